//! The run vocabulary ([`Trigger`], [`RequestedMode`], [`Mode`], [`RunStatus`]) and a
//! run's [`Counts`]. The enums are stored as text (the migrations' `CHECK` constraints list
//! the values): each encodes as its lower-case name, the same string serde writes and the
//! CLI prints.

use serde::{Deserialize, Serialize};

/// What started a run.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Trigger {
    Schedule,
    #[default]
    Manual,
    Cli,
    Startup,
}

impl Trigger {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
            Trigger::Cli => "cli",
            Trigger::Startup => "startup",
        }
    }
}

/// What the trigger asked for; the run decides between incremental and full for `Auto`.
/// A queued row holds it in `mode` until the run has decided.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum RequestedMode {
    #[default]
    Auto,
    Full,
}

/// The pass a run actually made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Mode {
    Incremental,
    Full,
}

impl Mode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mode::Incremental => "incremental",
            Mode::Full => "full",
        }
    }
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
}

impl RunStatus {
    pub(crate) const ALL: [RunStatus; 6] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Skipped,
        RunStatus::Cancelled,
    ];

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

/// Display and comparison with text use the stored name, so a row prints and compares
/// as the database and the API spell it.
macro_rules! text_like {
    ($($ty:ty),*) => {$(
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    )*};
}

text_like!(Trigger, Mode, RunStatus);

/// A run's counters. The one set of them: a batch's increments, a run's running totals,
/// the row's columns, the summary and the live progress all carry this struct.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Counts {
    pub pages: u64,
    pub fetched: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub marked_missing: u64,
    /// Entries the run wrote to `partner_center_sync_errors`.
    pub parse_errors: u64,
}

impl Counts {
    pub(crate) fn add(&mut self, other: &Counts) {
        self.pages += other.pages;
        self.fetched += other.fetched;
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.marked_missing += other.marked_missing;
        self.parse_errors += other.parse_errors;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(v: impl Serialize) -> String {
        serde_json::to_string(&v).expect("serialises")
    }

    #[test]
    fn serde_and_display_use_the_stored_names() {
        for t in [
            Trigger::Schedule,
            Trigger::Manual,
            Trigger::Cli,
            Trigger::Startup,
        ] {
            assert_eq!(json(t), format!("\"{t}\""));
        }
        for m in [Mode::Incremental, Mode::Full] {
            assert_eq!(json(m), format!("\"{m}\""));
        }
        for s in RunStatus::ALL {
            assert_eq!(json(s), format!("\"{s}\""));
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(json(RequestedMode::Auto), "\"auto\"");
    }
}
