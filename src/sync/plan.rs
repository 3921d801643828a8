//! The decision at the start of a run, kept pure so every case is a table row: incremental
//! or full, from when, and where the watermark goes when the run completes.

use chrono::{DateTime, NaiveDate, Utc};

use crate::config::Config;
use crate::store::runs::{Mode, RequestedMode};
use crate::store::state::SyncState;

/// The plan of one run, decided from the request and the stored cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    pub mode: Mode,
    /// Read referrals updated since then; `None` reads everything.
    pub since: Option<DateTime<Utc>>,
    /// Why this mode, for the `sync_started` event.
    pub reason: &'static str,
    /// Whether completing the run moves the watermark (a `--since` later than the stored
    /// window must not, or the gap between them would never be read).
    pub advances_watermark: bool,
}

/// The settings the decision reads.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Policy {
    /// Incremental runs re-read this much before the watermark, for clock skew and
    /// referrals updated while the previous run paged.
    pub overlap: chrono::Duration,
    /// A full pass (which finds referrals Partner Center no longer returns) at least this often.
    pub full_reconcile_every: chrono::Duration,
}

impl Policy {
    pub(crate) fn from_config(config: &Config) -> Self {
        Self {
            overlap: chrono::Duration::from_std(config.incremental_overlap).unwrap_or_default(),
            full_reconcile_every: chrono::Duration::from_std(config.full_reconcile_every)
                .unwrap_or(chrono::Duration::MAX),
        }
    }
}

impl Plan {
    /// Decides the pass for a request (`--full` is `RequestedMode::Full`, `--since` is
    /// `since`) against the stored cursor at `now`.
    pub(crate) fn decide(
        requested: RequestedMode,
        since: Option<DateTime<Utc>>,
        state: &SyncState,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Plan {
        if requested == RequestedMode::Full {
            return Plan::full("requested");
        }
        if !state.incremental_filter_supported {
            return Plan::full("Partner Center refused the updatedDateTime filter earlier");
        }
        if let Some(since) = since {
            let covers = state.watermark.is_some_and(|w| since <= w - policy.overlap);
            return Plan {
                mode: Mode::Incremental,
                since: Some(since),
                reason: "--since",
                advances_watermark: covers,
            };
        }
        let Some(watermark) = state.watermark else {
            return Plan::full("first run");
        };
        if state
            .last_full_at
            .is_none_or(|at| now - at >= policy.full_reconcile_every)
        {
            return Plan::full("periodic full reconciliation is due");
        }
        Plan {
            mode: Mode::Incremental,
            since: Some(watermark - policy.overlap),
            reason: "scheduled",
            advances_watermark: true,
        }
    }

    /// The plan in words, for the `sync_started` message: "full pass (first run)",
    /// "incremental since 2026-01-31T00:00:00Z (scheduled)".
    pub(crate) fn describe(&self) -> String {
        match self.since {
            Some(since) => format!(
                "incremental since {} ({})",
                since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                self.reason
            ),
            None => format!("{} pass ({})", self.mode.as_str(), self.reason),
        }
    }

    /// What an incremental pass becomes when Partner Center refuses its filter.
    pub(crate) fn filter_refused() -> Plan {
        Plan::full("Partner Center refused the updatedDateTime filter")
    }

    fn full(reason: &'static str) -> Plan {
        Plan {
            mode: Mode::Full,
            since: None,
            reason,
            advances_watermark: true,
        }
    }

    /// The cursor a completed run saves. `server_time` is Partner Center's clock when the
    /// first page was served: anything updated after it is read by the next run.
    pub(crate) fn next_state(
        &self,
        stored: &SyncState,
        server_time: DateTime<Utc>,
        filter_refused: bool,
    ) -> SyncState {
        SyncState {
            watermark: if self.advances_watermark {
                Some(server_time)
            } else {
                stored.watermark
            },
            last_full_at: if self.mode == Mode::Full {
                Some(server_time)
            } else {
                stored.last_full_at
            },
            incremental_filter_supported: !filter_refused
                && (self.mode == Mode::Incremental || stored.incremental_filter_supported),
        }
    }
}

/// `--since` on the command line and `updated_since` in the HTTP API: an RFC 3339
/// timestamp, or a date meaning midnight UTC. One rule, so a value copied from one works
/// in the other.
pub(crate) fn parse_since(v: &str) -> Result<DateTime<Utc>, InvalidSince> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| InvalidSince(v.to_owned()))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not an RFC 3339 timestamp like 2025-01-15T08:00:00Z or a date like 2025-01-15")]
pub(crate) struct InvalidSince(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test timestamp")
            .with_timezone(&Utc)
    }

    const NOW: &str = "2025-06-10T12:00:00Z";
    const WATERMARK: &str = "2025-06-10T11:00:00Z";

    fn policy() -> Policy {
        Policy {
            overlap: chrono::Duration::minutes(5),
            full_reconcile_every: chrono::Duration::days(7),
        }
    }

    fn state(watermark: Option<&str>, last_full: Option<&str>, filter_ok: bool) -> SyncState {
        SyncState {
            watermark: watermark.map(at),
            last_full_at: last_full.map(at),
            incremental_filter_supported: filter_ok,
        }
    }

    #[test]
    fn each_case_decides_mode_window_and_watermark() {
        struct Case {
            name: &'static str,
            requested: RequestedMode,
            since: Option<&'static str>,
            state: SyncState,
            mode: Mode,
            from: Option<&'static str>,
            advances: bool,
            reason: &'static str,
        }
        let recent_full = Some("2025-06-09T00:00:00Z");
        let old_full = Some("2025-06-01T00:00:00Z");
        let cases = [
            Case {
                name: "first run",
                requested: RequestedMode::Auto,
                since: None,
                state: SyncState::default(),
                mode: Mode::Full,
                from: None,
                advances: true,
                reason: "first run",
            },
            Case {
                name: "incremental: the window starts an overlap before the watermark",
                requested: RequestedMode::Auto,
                since: None,
                state: state(Some(WATERMARK), recent_full, true),
                mode: Mode::Incremental,
                from: Some("2025-06-10T10:55:00Z"),
                advances: true,
                reason: "scheduled",
            },
            Case {
                name: "full reconcile due",
                requested: RequestedMode::Auto,
                since: None,
                state: state(Some(WATERMARK), old_full, true),
                mode: Mode::Full,
                from: None,
                advances: true,
                reason: "periodic full reconciliation is due",
            },
            Case {
                name: "full reconcile due: never had a full pass",
                requested: RequestedMode::Auto,
                since: None,
                state: state(Some(WATERMARK), None, true),
                mode: Mode::Full,
                from: None,
                advances: true,
                reason: "periodic full reconciliation is due",
            },
            Case {
                name: "refused filter",
                requested: RequestedMode::Auto,
                since: None,
                state: state(Some(WATERMARK), recent_full, false),
                mode: Mode::Full,
                from: None,
                advances: true,
                reason: "Partner Center refused the updatedDateTime filter earlier",
            },
            Case {
                name: "refused filter wins over --since",
                requested: RequestedMode::Auto,
                since: Some("2025-06-10T00:00:00Z"),
                state: state(Some(WATERMARK), recent_full, false),
                mode: Mode::Full,
                from: None,
                advances: true,
                reason: "Partner Center refused the updatedDateTime filter earlier",
            },
            Case {
                name: "--since inside the stored window moves the watermark",
                requested: RequestedMode::Auto,
                since: Some("2025-06-10T00:00:00Z"),
                state: state(Some(WATERMARK), recent_full, true),
                mode: Mode::Incremental,
                from: Some("2025-06-10T00:00:00Z"),
                advances: true,
                reason: "--since",
            },
            Case {
                name: "--since at exactly watermark minus overlap still covers the gap",
                requested: RequestedMode::Auto,
                since: Some("2025-06-10T10:55:00Z"),
                state: state(Some(WATERMARK), recent_full, true),
                mode: Mode::Incremental,
                from: Some("2025-06-10T10:55:00Z"),
                advances: true,
                reason: "--since",
            },
            Case {
                name: "--since later than the window leaves the watermark",
                requested: RequestedMode::Auto,
                since: Some("2025-06-10T11:30:00Z"),
                state: state(Some(WATERMARK), recent_full, true),
                mode: Mode::Incremental,
                from: Some("2025-06-10T11:30:00Z"),
                advances: false,
                reason: "--since",
            },
            Case {
                name: "--since before any run leaves the (absent) watermark",
                requested: RequestedMode::Auto,
                since: Some("2025-06-01T00:00:00Z"),
                state: SyncState::default(),
                mode: Mode::Incremental,
                from: Some("2025-06-01T00:00:00Z"),
                advances: false,
                reason: "--since",
            },
            Case {
                name: "--full",
                requested: RequestedMode::Full,
                since: None,
                state: state(Some(WATERMARK), recent_full, true),
                mode: Mode::Full,
                from: None,
                advances: true,
                reason: "requested",
            },
            Case {
                name: "--full wins over --since",
                requested: RequestedMode::Full,
                since: Some("2025-06-10T00:00:00Z"),
                state: state(Some(WATERMARK), recent_full, true),
                mode: Mode::Full,
                from: None,
                advances: true,
                reason: "requested",
            },
        ];
        for c in cases {
            let plan = Plan::decide(c.requested, c.since.map(at), &c.state, at(NOW), &policy());
            assert_eq!(
                plan,
                Plan {
                    mode: c.mode,
                    since: c.from.map(at),
                    reason: c.reason,
                    advances_watermark: c.advances,
                },
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn the_saved_cursor_follows_the_pass() {
        let server = at("2025-06-10T12:00:01Z");
        let stored = state(Some(WATERMARK), Some("2025-06-09T00:00:00Z"), true);
        let incremental = Plan::decide(RequestedMode::Auto, None, &stored, at(NOW), &policy());
        assert_eq!(
            incremental.next_state(&stored, server, false),
            state(
                Some("2025-06-10T12:00:01Z"),
                Some("2025-06-09T00:00:00Z"),
                true
            ),
            "an incremental pass moves the watermark, not the last full pass"
        );
        let full = Plan::decide(RequestedMode::Full, None, &stored, at(NOW), &policy());
        assert_eq!(
            full.next_state(&stored, server, false),
            state(
                Some("2025-06-10T12:00:01Z"),
                Some("2025-06-10T12:00:01Z"),
                true
            ),
        );
        assert_eq!(
            Plan::filter_refused().next_state(&stored, server, true),
            state(
                Some("2025-06-10T12:00:01Z"),
                Some("2025-06-10T12:00:01Z"),
                false
            ),
            "a refusal is remembered"
        );
        let refused_before = state(Some(WATERMARK), None, false);
        assert!(
            !full
                .next_state(&refused_before, server, false)
                .incremental_filter_supported,
            "a full pass never shows the filter works"
        );
        let gap = Plan::decide(
            RequestedMode::Auto,
            Some(at("2025-06-10T11:30:00Z")),
            &stored,
            at(NOW),
            &policy(),
        );
        assert_eq!(
            gap.next_state(&stored, server, false),
            stored,
            "a --since past the window keeps the cursor"
        );
    }

    #[test]
    fn since_takes_a_timestamp_or_a_date() {
        assert_eq!(
            parse_since("2025-01-15").map(|t| t.to_rfc3339()),
            Ok("2025-01-15T00:00:00+00:00".to_owned())
        );
        assert_eq!(
            parse_since("2025-01-15T09:00:00+01:00").map(|t| t.to_rfc3339()),
            Ok("2025-01-15T08:00:00+00:00".to_owned())
        );
        let err = parse_since("yesterday").expect_err("not a time");
        assert!(err.to_string().starts_with("`yesterday` is not"), "{err}");
    }
}
