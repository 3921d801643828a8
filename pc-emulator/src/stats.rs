//! Request and token statistics, so tests can assert on what a client actually did.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Which endpoint a request hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathKind {
    OpenidConfiguration,
    InstanceDiscovery,
    DeviceCode,
    Token,
    DeviceLogin,
    ReferralList,
    ReferralGet,
    Control,
    Other,
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Requests by endpoint and HTTP status; status 0 means the connection was reset unanswered.
    pub requests: BTreeMap<PathKind, BTreeMap<u16, u64>>,
    /// `/devicecode` answers that carried a device code.
    pub device_codes_issued: u64,
    /// Device-code polls of `/token`, whatever the answer.
    pub device_code_polls: u64,
    /// Token responses minted (device code, refresh and [`crate::Emulator::issue_tokens`]).
    pub tokens_issued: u64,
    /// Successful refresh-token grants.
    pub refreshes: u64,
    /// Successful refreshes that used a refresh token already rotated away: Entra accepts them,
    /// but a client doing so has failed to switch to the new one.
    pub refreshes_with_superseded_token: u64,
    /// Listing pages served with status 200 (malformed ones included).
    pub pages_served: u64,
    /// Referrals inside those pages.
    pub referrals_served: u64,
    /// Highest number of referrals API requests in flight at once.
    pub max_concurrent_api_requests: u64,
    /// Injected faults by kind (`429`, `503`, `reset`, `slow`, `malformed`, `token_expire`, ...).
    pub faults_injected: BTreeMap<String, u64>,
}

impl Stats {
    /// Requests to `kind` answered with `status`.
    pub fn requests_with(&self, kind: PathKind, status: u16) -> u64 {
        self.requests
            .get(&kind)
            .and_then(|by_status| by_status.get(&status))
            .copied()
            .unwrap_or(0)
    }

    /// All requests to `kind`, whatever the status.
    pub fn requests_to(&self, kind: PathKind) -> u64 {
        self.requests
            .get(&kind)
            .map(|by_status| by_status.values().sum())
            .unwrap_or(0)
    }

    /// Faults of this kind injected so far.
    pub fn faults(&self, kind: &str) -> u64 {
        self.faults_injected.get(kind).copied().unwrap_or(0)
    }
}

/// The live counters: a mutex for the maps, atomics for the concurrency gauge that every API
/// request touches twice.
#[derive(Default)]
pub(crate) struct StatsCollector {
    inner: Mutex<Stats>,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

/// Decrements the in-flight gauge when the API request ends, however it ends.
pub(crate) struct InFlight<'a>(&'a StatsCollector);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl StatsCollector {
    pub fn update(&self, f: impl FnOnce(&mut Stats)) {
        let mut stats = self.inner.lock().expect("stats lock poisoned");
        f(&mut stats);
    }

    pub fn record_request(&self, kind: PathKind, status: u16) {
        self.update(|s| {
            *s.requests
                .entry(kind)
                .or_default()
                .entry(status)
                .or_default() += 1
        });
    }

    pub fn record_faults(&self, kinds: &[String]) {
        if kinds.is_empty() {
            return;
        }
        self.update(|s| {
            for kind in kinds {
                *s.faults_injected.entry(kind.clone()).or_default() += 1;
            }
        });
    }

    pub fn enter_api(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(self)
    }

    pub fn snapshot(&self) -> Stats {
        let mut stats = self.inner.lock().expect("stats lock poisoned").clone();
        stats.max_concurrent_api_requests = self.max_in_flight.load(Ordering::SeqCst);
        stats
    }
}
