//! The shipped Prometheus alert rules, checked and unit-tested by the real `promtool`
//! (Debian's `prometheus` package; `scripts/ensure-tools` installs it).

use std::process::Command;

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/prometheus"))
        .output()
        .expect("promtool runs (scripts/ensure-tools installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn the_alert_rules_are_valid_and_their_unit_tests_pass() {
    let checked = promtool(&["check", "rules", "alerts.yml"]);
    assert!(checked.contains("SUCCESS: 6 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", "alerts_test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// Every alert the README's table promises is a rule, and every rule is in the table.
#[test]
fn the_readme_alert_table_names_every_rule() {
    let root = env!("CARGO_MANIFEST_DIR");
    let rules = std::fs::read_to_string(format!("{root}/contrib/prometheus/alerts.yml"))
        .expect("alerts.yml");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README");
    let names: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");
    for name in names {
        assert!(
            readme.contains(&format!("`{name}`")),
            "README lacks `{name}`"
        );
    }
}
