//! Prometheus metrics, counted where events happen and served at `/metrics`.
//!
//! One registry per process; handles are cheap clones of the same atomics. No label
//! ever carries a token, a URL with a query string or a referral id (cardinality).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

mod process;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RunLabels {
    pub trigger: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StatusLabels {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    pub version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReferralStatusLabels {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DestinationLabels {
    pub destination: String,
}

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub(crate) runs: Family<RunLabels, Counter>,
    pub(crate) run_duration: Histogram,
    pub(crate) referrals_fetched: Counter,
    pub(crate) referrals_upserted: Family<OutcomeLabels, Counter>,
    pub(crate) api_requests: Family<StatusLabels, Counter>,
    pub(crate) api_retries: Counter,
    pub(crate) last_attempt: Gauge<f64, AtomicU64>,
    pub(crate) last_success: Gauge<f64, AtomicU64>,
    pub(crate) access_token_expiry: Gauge<f64, AtomicU64>,
    pub(crate) sign_in_required: Gauge,
    pub(crate) skipped_runs: Counter,
    pub(crate) api_request_duration: Histogram,
    /// Referrals present in Partner Center (not marked missing) by status, refreshed after
    /// each run from the table so a restart or the passive host of an HA pair shows them too.
    pub(crate) referrals: Family<ReferralStatusLabels, Gauge>,
    /// Notifications waiting per destination (the backlog), refreshed at scrape time.
    pub(crate) notifications_pending: Family<DestinationLabels, Gauge>,
    /// Failed delivery attempts per destination.
    pub(crate) notifications_failed: Family<DestinationLabels, Counter>,
    pub(crate) notifications_delivered: Family<DestinationLabels, Counter>,
    /// 0 once a destination has failed `notify_unhealthy_after` times in a row.
    pub(crate) notifications_healthy: Family<DestinationLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        // The root registry carries the unprefixed `process_*` family every Prometheus
        // client library exports; everything of ours lives under the prefix.
        let mut root = Registry::default();
        root.register_collector(Box::new(process::ProcessCollector::new()));
        let r = root.sub_registry_with_prefix("partner_center_sync");
        // A gauge at 1 rather than OpenMetrics' `info` type: Prometheus' own text parser
        // (and so `promtool check metrics`) knows no `info`.
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        r.register(
            "build_info",
            "Version of the running binary (value is always 1)",
            build_info,
        );
        let runs = Family::<RunLabels, Counter>::default();
        r.register(
            "runs",
            "Sync runs by trigger and final status",
            runs.clone(),
        );
        let run_duration =
            Histogram::new([1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0]);
        r.register(
            "run_duration_seconds",
            "Wall time of finished sync runs",
            run_duration.clone(),
        );
        let referrals_fetched = Counter::default();
        r.register(
            "referrals_fetched",
            "Referrals received from Partner Center",
            referrals_fetched.clone(),
        );
        let referrals_upserted = Family::<OutcomeLabels, Counter>::default();
        r.register(
            "referrals_upserted",
            "Referrals written, by outcome (inserted, updated, unchanged, marked_missing)",
            referrals_upserted.clone(),
        );
        let api_requests = Family::<StatusLabels, Counter>::default();
        r.register(
            "partner_center_requests",
            "Partner Center API responses by HTTP status (or `error`)",
            api_requests.clone(),
        );
        let api_retries = Counter::default();
        r.register(
            "partner_center_retries",
            "Partner Center requests retried",
            api_retries.clone(),
        );
        let last_attempt = Gauge::<f64, AtomicU64>::default();
        r.register(
            "last_attempt_timestamp_seconds",
            "Start of the last sync attempt (Unix seconds)",
            last_attempt.clone(),
        );
        let last_success = Gauge::<f64, AtomicU64>::default();
        r.register(
            "last_success_timestamp_seconds",
            "End of the last successful sync (Unix seconds)",
            last_success.clone(),
        );
        let access_token_expiry = Gauge::<f64, AtomicU64>::default();
        r.register(
            "access_token_expiry_timestamp_seconds",
            "Expiry of the current access token (Unix seconds)",
            access_token_expiry.clone(),
        );
        let sign_in_required = Gauge::default();
        r.register(
            "sign_in_required",
            "1 when an operator must run `partner-center-sync login`",
            sign_in_required.clone(),
        );
        let skipped_runs = Counter::default();
        r.register(
            "skipped_runs",
            "Scheduled runs skipped because the feature flag is off",
            skipped_runs.clone(),
        );
        let api_request_duration =
            Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]);
        r.register(
            "partner_center_request_duration_seconds",
            "Latency of Partner Center API requests, each attempt counted separately",
            api_request_duration.clone(),
        );
        let referrals = Family::<ReferralStatusLabels, Gauge>::default();
        r.register(
            "referrals",
            "Referrals in the table that Partner Center still returns, by status",
            referrals.clone(),
        );
        let notifications_pending = Family::<DestinationLabels, Gauge>::default();
        r.register(
            "notifications_pending",
            "Notifications not yet delivered, per destination",
            notifications_pending.clone(),
        );
        let notifications_failed = Family::<DestinationLabels, Counter>::default();
        r.register(
            "notifications_failed",
            "Failed notification delivery attempts, per destination",
            notifications_failed.clone(),
        );
        let notifications_delivered = Family::<DestinationLabels, Counter>::default();
        r.register(
            "notifications_delivered",
            "Notifications delivered, per destination",
            notifications_delivered.clone(),
        );
        let notifications_healthy = Family::<DestinationLabels, Gauge>::default();
        r.register(
            "notifications_destination_healthy",
            "1 while a notification destination delivers, 0 after repeated failures",
            notifications_healthy.clone(),
        );
        Self {
            registry: Arc::new(root),
            runs,
            run_duration,
            referrals_fetched,
            referrals_upserted,
            api_requests,
            api_retries,
            last_attempt,
            last_success,
            access_token_expiry,
            sign_in_required,
            skipped_runs,
            api_request_duration,
            referrals,
            notifications_pending,
            notifications_failed,
            notifications_delivered,
            notifications_healthy,
        }
    }

    /// Replaces the per-status gauge wholesale, so a status no referral holds any more
    /// disappears instead of keeping its last count.
    pub(crate) fn set_referrals_by_status(&self, counts: &[(String, i64)]) {
        self.referrals.clear();
        for (status, n) in counts {
            self.referrals
                .get_or_create(&ReferralStatusLabels {
                    status: status.clone(),
                })
                .set(*n);
        }
    }

    pub(crate) fn destination(name: &str) -> DestinationLabels {
        DestinationLabels {
            destination: name.to_owned(),
        }
    }

    pub(crate) fn api_request(&self, status: &str, elapsed: std::time::Duration) {
        self.api_request_duration.observe(elapsed.as_secs_f64());
        self.api_requests
            .get_or_create(&StatusLabels {
                status: status.to_owned(),
            })
            .inc();
    }

    pub(crate) fn upserted(&self, outcome: &str, n: u64) {
        self.referrals_upserted
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc_by(n);
    }

    pub(crate) fn run_finished(&self, trigger: &str, status: &str) {
        self.runs
            .get_or_create(&RunLabels {
                trigger: trigger.to_owned(),
                status: status.to_owned(),
            })
            .inc();
    }

    /// The OpenMetrics text format, what Prometheus asks for when it scrapes.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The classic Prometheus text format (0.0.4), for clients that do not ask for
    /// OpenMetrics: curl, `promtool check metrics`, older scrapers.
    pub(crate) fn encode_prometheus_text(&self) -> String {
        openmetrics_to_prometheus_text(&self.encode())
    }
}

/// prometheus-client writes only OpenMetrics. The two formats differ in three ways that
/// matter for what we export: a counter's HELP/TYPE name lacks the `_total` its samples
/// carry, `# UNIT` lines, and the `# EOF` terminator.
fn openmetrics_to_prometheus_text(open_metrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{prefix}{name}{suffix} {tail}"));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_and_referrals_by_status_are_exported() {
        let metrics = Metrics::new();
        metrics.set_referrals_by_status(&[("New".into(), 3), ("Active".into(), 5)]);
        metrics.set_referrals_by_status(&[("Active".into(), 6)]);
        let text = metrics.encode();
        let version = env!("CARGO_PKG_VERSION");
        assert!(
            text.contains(&format!(
                "partner_center_sync_build_info{{version=\"{version}\"}} 1"
            )),
            "{text}"
        );
        assert!(
            text.contains("partner_center_sync_referrals{status=\"Active\"} 6"),
            "{text}"
        );
        assert!(
            !text.contains("status=\"New\""),
            "a status no referral holds any more is dropped: {text}"
        );
        assert!(text.contains(
            "# TYPE partner_center_sync_partner_center_request_duration_seconds histogram"
        ));
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
    }

    /// Every metric a panel of the shipped Grafana dashboard queries is one we export.
    #[test]
    fn the_grafana_dashboard_queries_only_exported_metrics() {
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../contrib/grafana/partner-center-sync.json"))
                .expect("dashboard JSON");
        // Labelled families show only once they hold a series.
        let metrics = Metrics::new();
        metrics.set_referrals_by_status(&[("New".into(), 1)]);
        metrics.run_finished("manual", "succeeded");
        metrics.upserted("inserted", 1);
        metrics.api_request("200", std::time::Duration::from_millis(5));
        let exported = metrics.encode_prometheus_text();
        let families: Vec<&str> = exported
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        let mut checked = 0;
        for panel in dashboard["panels"].as_array().expect("panels") {
            for target in panel["targets"].as_array().expect("targets") {
                let expr = target["expr"].as_str().expect("expr");
                let names = expr
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|w| w.starts_with("partner_center_sync_") || w.starts_with("process_"));
                for name in names {
                    let known = families.iter().any(|f| {
                        name == *f
                            || ["_bucket", "_sum", "_count"]
                                .iter()
                                .any(|s| name.strip_suffix(s) == Some(f))
                    });
                    assert!(
                        known,
                        "panel {} queries unknown metric {name}",
                        panel["title"]
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked >= 15, "only {checked} metric references found");
    }

    #[test]
    fn prometheus_text_names_counters_with_total_and_drops_openmetrics_lines() {
        let open_metrics = "# HELP x_runs Runs.\n# TYPE x_runs counter\nx_runs_total{a=\"b\"} 1\n\
                            # HELP x_age Age.\n# TYPE x_age gauge\n# UNIT x_age seconds\nx_age 2.5\n# EOF\n";
        assert_eq!(
            openmetrics_to_prometheus_text(open_metrics),
            "# HELP x_runs_total Runs.\n# TYPE x_runs_total counter\nx_runs_total{a=\"b\"} 1\n\
             # HELP x_age Age.\n# TYPE x_age gauge\nx_age 2.5\n"
        );
    }
}
