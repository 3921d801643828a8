//! What a run reports: live progress and the final summary.

use std::fmt;
use std::ops::Deref;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Mode, RunStatus, Trigger};
use crate::store::runs::Counts;

/// Live counts, sent after each committed batch.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Progress {
    pub(crate) run_id: Option<i64>,
    pub(crate) mode: Option<Mode>,
    #[serde(flatten)]
    pub(crate) counts: Counts,
    pub(crate) elapsed_secs: f64,
}

/// The outcome of a run, printed by the CLI (text or `--json`) and logged by the daemon.
/// For a dry run the counts say what would have happened.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunSummary {
    pub run_id: Option<i64>,
    pub(crate) trigger: Trigger,
    pub mode: Option<Mode>,
    pub status: RunStatus,
    pub dry_run: bool,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) finished_at: DateTime<Utc>,
    pub(crate) duration_secs: f64,
    /// Of `duration_secs`, the time spent in PostgreSQL transactions; the rest is waiting
    /// for Partner Center, which tells an operator where a slow run loses its time.
    pub write_secs: f64,
    #[serde(flatten)]
    pub counts: Counts,
    pub retries: u32,
    pub next_links_repaired: u32,
    /// The cursor the next incremental run starts from (minus the overlap).
    pub(crate) watermark: Option<DateTime<Utc>>,
    pub(crate) message: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sample_inserted: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sample_updated: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) sample_missing: Vec<String>,
}

impl RunSummary {
    /// The feature flag is off: nothing was touched.
    pub(crate) fn disabled(trigger: Trigger) -> Self {
        let now = Utc::now();
        Self {
            run_id: None,
            trigger,
            mode: None,
            status: RunStatus::Skipped,
            dry_run: false,
            started_at: now,
            finished_at: now,
            duration_secs: 0.0,
            write_secs: 0.0,
            counts: Counts::default(),
            retries: 0,
            next_links_repaired: 0,
            watermark: None,
            message: Some(
                "The Partner Center integration is disabled (enabled = false / HUNTER_PARTNER_CENTER_ENABLED); nothing was synced.".into(),
            ),
            sample_inserted: Vec::new(),
            sample_updated: Vec::new(),
            sample_missing: Vec::new(),
        }
    }
}

/// `summary.inserted` reads the count, as it did when the fields were the summary's own.
impl Deref for RunSummary {
    type Target = Counts;
    fn deref(&self) -> &Counts {
        &self.counts
    }
}

impl Deref for Progress {
    type Target = Counts;
    fn deref(&self) -> &Counts {
        &self.counts
    }
}

fn samples(ids: &[String]) -> String {
    if ids.is_empty() {
        String::new()
    } else {
        format!(" (e.g. {})", ids.join(", "))
    }
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.status == RunStatus::Skipped {
            return f.write_str(self.message.as_deref().unwrap_or("Skipped."));
        }
        let mode = self.mode.map_or("unknown", Mode::as_str);
        if self.dry_run {
            writeln!(
                f,
                "Dry run ({mode} pass): {} pages, {} referrals fetched in {:.1}s.",
                self.pages, self.fetched, self.duration_secs
            )?;
            writeln!(
                f,
                "Would insert {}{}.",
                self.inserted,
                samples(&self.sample_inserted)
            )?;
            writeln!(
                f,
                "Would update {}{}.",
                self.updated,
                samples(&self.sample_updated)
            )?;
            if self.mode == Some(Mode::Full) {
                writeln!(
                    f,
                    "Would mark missing {}{}.",
                    self.marked_missing,
                    samples(&self.sample_missing)
                )?;
            }
            writeln!(
                f,
                "Unchanged: {}. Not storable as sent (sync errors): {}.",
                self.unchanged, self.parse_errors
            )?;
            return f.write_str("Nothing was written.");
        }
        let rate = if self.duration_secs > 0.0 {
            self.fetched as f64 / self.duration_secs
        } else {
            0.0
        };
        write!(
            f,
            "Sync run {} ({mode}, {}) {} in {:.1}s: {} pages, {} referrals fetched ({rate:.0}/s); {} inserted, {} updated, {} unchanged, {} marked missing, {} sync errors, {} retries.",
            self.run_id
                .map_or_else(|| "-".to_owned(), |id| id.to_string()),
            self.trigger.as_str(),
            self.status.as_str(),
            self.duration_secs,
            self.pages,
            self.fetched,
            self.inserted,
            self.updated,
            self.unchanged,
            self.marked_missing,
            self.parse_errors,
            self.retries,
        )
    }
}
