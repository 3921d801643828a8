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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub trigger: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub runs: Family<RunLabels, Counter>,
    pub run_duration: Histogram,
    pub referrals_fetched: Counter,
    pub referrals_upserted: Family<OutcomeLabels, Counter>,
    pub api_requests: Family<StatusLabels, Counter>,
    pub api_retries: Counter,
    pub last_attempt: Gauge<f64, AtomicU64>,
    pub last_success: Gauge<f64, AtomicU64>,
    pub access_token_expiry: Gauge<f64, AtomicU64>,
    pub sign_in_required: Gauge,
    pub skipped_runs: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("partner_center_sync");
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
        Self {
            registry: Arc::new(r),
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
        }
    }

    pub fn api_request(&self, status: &str) {
        self.api_requests
            .get_or_create(&StatusLabels {
                status: status.to_owned(),
            })
            .inc();
    }

    pub fn upserted(&self, outcome: &str, n: u64) {
        self.referrals_upserted
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc_by(n);
    }

    pub fn run_finished(&self, trigger: &str, status: &str) {
        self.runs
            .get_or_create(&RunLabels {
                trigger: trigger.to_owned(),
                status: status.to_owned(),
            })
            .inc();
    }

    /// The text exposition format served at `/metrics`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
