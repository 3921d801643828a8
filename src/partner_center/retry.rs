//! When and how long to wait before retrying a Partner Center request.
//!
//! Full jitter (a uniform delay between zero and the exponential ceiling) spreads the
//! retries of several clients apart; `Retry-After` is a floor because Microsoft asks for
//! no retry sooner than it says. Everything is capped by `retry_max_delay`, so a hostile
//! or broken header cannot park a run for hours. The per-run budget bounds how much
//! retrying one run may do in total, whatever the mix of faults.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::Config;

/// The first backoff ceiling; it doubles on each attempt up to `max_delay`.
const BASE_DELAY: Duration = Duration::from_millis(500);

#[derive(Clone, Debug)]
pub(crate) struct RetryPolicy {
    /// Attempts per request, the first one included.
    pub max_attempts: u32,
    pub max_delay: Duration,
}

impl RetryPolicy {
    pub(crate) fn from_config(config: &Config) -> Self {
        Self {
            max_attempts: config.retry_max_attempts.max(1),
            max_delay: config.retry_max_delay,
        }
    }

    /// The wait before retry number `retry` (1 for the first retry).
    pub(crate) fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let exp = BASE_DELAY.saturating_mul(1u32 << retry.saturating_sub(1).min(16));
        let ceiling = exp.min(self.max_delay);
        let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        let jittered = Duration::from_millis(rand::random_range(0..=ceiling_ms));
        jittered
            .max(retry_after.unwrap_or_default())
            .min(self.max_delay)
    }
}

/// Retries left for one run, shared by every request the run makes.
#[derive(Clone, Debug)]
pub(crate) struct RetryBudget {
    left: Arc<AtomicU32>,
    total: u32,
}

impl RetryBudget {
    pub(crate) fn new(total: u32) -> Self {
        Self {
            left: Arc::new(AtomicU32::new(total)),
            total,
        }
    }

    /// Takes one retry; false when the budget is spent.
    pub(crate) fn take(&self) -> bool {
        self.left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    pub(crate) fn total(&self) -> u32 {
        self.total
    }

    pub(crate) fn used(&self) -> u32 {
        self.total - self.left.load(Ordering::Acquire)
    }
}

/// `Retry-After` as delta-seconds or an HTTP date (RFC 9110 §10.2.3); a date in the past
/// means "now".
pub(crate) fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = parse_http_date(value)?;
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// An IMF-fixdate such as `Sun, 06 Nov 1994 08:49:37 GMT` (also used for the `Date` header).
pub(crate) fn parse_http_date(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(value.trim())
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2025-01-15T08:00:00Z")
            .expect("date")
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 15 Jan 2025 08:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 15 Jan 2025 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn delay_honours_retry_after_and_the_cap() {
        let p = RetryPolicy {
            max_attempts: 3,
            max_delay: Duration::from_secs(10),
        };
        for retry in 1..20 {
            let d = p.delay(retry, Some(Duration::from_secs(2)));
            assert!(
                d >= Duration::from_secs(2) && d <= Duration::from_secs(10),
                "{d:?}"
            );
        }
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3600))),
            Duration::from_secs(10)
        );
        let first = (0..50).map(|_| p.delay(1, None)).max().expect("some");
        assert!(first <= BASE_DELAY, "{first:?}");
    }

    #[test]
    fn budget_is_shared_and_runs_out() {
        let b = RetryBudget::new(2);
        let c = b.clone();
        assert!(b.take());
        assert!(c.take());
        assert!(!b.take());
        assert_eq!(b.used(), 2);
    }
}
