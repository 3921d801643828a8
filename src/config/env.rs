//! What the environment does to the file: variables with our prefix that are no setting
//! (a typo would otherwise leave the default in force, silently), and file keys that a
//! variable overrides (an edit to the file would otherwise seem to do nothing on reload).

use std::collections::HashMap;

use super::keys::{self, KEYS, Key};
use super::{Loaded, Problem, Source};

/// Prefix of the environment variables the daemon reads (kept from the old integration).
const ENV_PREFIX: &str = "HUNTER_PARTNER_CENTER_";

/// A `HUNTER_PARTNER_CENTER_*` variable that is no setting.
#[derive(Clone, Debug)]
pub(crate) struct UnknownEnv {
    pub variable: String,
    /// The setting it was probably meant to be.
    pub did_you_mean: Option<&'static Key>,
}

/// A file (or credential file) value that an environment variable overrides.
#[derive(Clone, Debug)]
pub(crate) struct Shadowed {
    pub key: &'static str,
    pub variable: &'static str,
    /// Where the value that no longer counts is.
    pub shadowed: Source,
}

/// Unknown variables, sorted so the report is stable.
pub(super) fn unknown(env: &HashMap<String, String>) -> Vec<UnknownEnv> {
    let mut unknown: Vec<UnknownEnv> = env
        .keys()
        .filter(|name| name.starts_with(ENV_PREFIX) && !KEYS.iter().any(|k| k.env == *name))
        .map(|name| UnknownEnv {
            variable: name.clone(),
            did_you_mean: keys::closest(&name[ENV_PREFIX.len()..]),
        })
        .collect();
    unknown.sort_by(|a, b| a.variable.cmp(&b.variable));
    unknown
}

impl UnknownEnv {
    fn hint(&self) -> String {
        match self.did_you_mean {
            Some(k) => format!(
                "did you mean {} (file key `{}`, {})? rename or remove it",
                k.env, k.name, k.doc
            ),
            None => "remove it; the settings are listed in config/partner-center-sync.toml".into(),
        }
    }

    /// As `config check` reports it: an error, since the setting meant is not in force.
    pub(super) fn problem(&self) -> Problem {
        Problem::new(
            &self.variable,
            Source::Env(self.variable.clone()),
            "is not a setting this program reads".into(),
            &self.hint(),
        )
    }
}

impl Loaded {
    /// Logs each unknown variable as `config_env_unknown` (a warning: every command but
    /// `config check` still runs with the rest of the configuration).
    pub(crate) fn warn_unknown_env(&self) {
        for u in &self.unknown_env {
            tracing::warn!(
                event = "config_env_unknown",
                variable = %u.variable,
                did_you_mean = u.did_you_mean.map_or("", |k| k.env),
                "The environment variable {} is not a setting and is ignored; {}.",
                u.variable,
                u.hint()
            );
        }
    }

    /// Logs each overridden file key as `config_key_shadowed`, at start-up and on every
    /// reload: an edit to that key in the file has no effect while the variable is set.
    pub(crate) fn warn_shadowed_keys(&self) {
        for s in &self.shadowed {
            tracing::warn!(
                event = "config_key_shadowed",
                key = s.key,
                variable = s.variable,
                shadowed = %s.shadowed,
                "The environment variable {} overrides `{}` from {}; edits there have no effect until the variable is removed.",
                s.variable,
                s.key,
                s.shadowed
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{LoadOptions, load};
    use super::*;

    fn env(vars: &[(&str, &str)]) -> HashMap<String, String> {
        vars.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn unknown_variables_are_warnings_and_with_strict_env_problems() {
        let vars = env(&[
            ("HUNTER_PARTNER_CENTER_SYNC_INTERVALL", "60"),
            ("HUNTER_PARTNER_CENTER_COLOUR", "blue"),
            ("HUNTER_PARTNER_CENTER_ENABLED", "false"),
            ("HOME", "/root"),
        ]);
        let lenient = LoadOptions {
            env: vars.clone(),
            ..LoadOptions::default()
        };
        let loaded = load(&lenient).expect("unknown variables are only warnings");
        let found: Vec<_> = loaded
            .unknown_env
            .iter()
            .map(|u| (u.variable.as_str(), u.did_you_mean.map(|k| k.name)))
            .collect();
        assert_eq!(
            found,
            [
                ("HUNTER_PARTNER_CENTER_COLOUR", None),
                (
                    "HUNTER_PARTNER_CENTER_SYNC_INTERVALL",
                    Some("sync_interval")
                ),
            ]
        );

        let strict = LoadOptions {
            env: vars,
            strict_env: true,
            ..LoadOptions::default()
        };
        let e = load(&strict).expect_err("strict: unknown variables are problems");
        assert_eq!(e.problems.len(), 2, "{e}");
        assert!(
            e.problems[1]
                .fix
                .contains("did you mean HUNTER_PARTNER_CENTER_SYNC_INTERVAL"),
            "{e}"
        );
    }

    #[test]
    fn a_variable_over_a_file_or_credential_value_shadows_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "sync_interval = 600\npage_size = 50\n").expect("write");
        std::fs::write(dir.path().join("api_token"), "from-credential-0123456789").expect("write");
        let opts = LoadOptions {
            path: Some(file.clone()),
            credentials_dir: Some(dir.path().into()),
            env: env(&[
                ("HUNTER_PARTNER_CENTER_SYNC_INTERVAL", "60"),
                (
                    "HUNTER_PARTNER_CENTER_API_TOKEN",
                    "from-env-0123456789abcdef",
                ),
                ("HUNTER_PARTNER_CENTER_RETRY_BUDGET", "5"),
            ]),
            ..LoadOptions::default()
        };
        let loaded = load(&opts).expect("valid");
        let found: Vec<_> = loaded
            .shadowed
            .iter()
            .map(|s| (s.key, s.variable, s.shadowed.clone()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "sync_interval",
                    "HUNTER_PARTNER_CENTER_SYNC_INTERVAL",
                    Source::File(file)
                ),
                (
                    "api_token",
                    "HUNTER_PARTNER_CENTER_API_TOKEN",
                    Source::Credential(dir.path().join("api_token"))
                ),
            ],
            "retry_budget is set only in the environment: nothing is shadowed"
        );
    }
}
