//! What a run can fail with, each saying what happens next.

use std::time::Duration;

use crate::auth::{AuthError, SignInRequired};
use crate::config::ConfigError;
use crate::exit::Exit;
use crate::partner_center::PcError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(
        "Another sync is running (another process holds the sync lock); this one was not started. Try again when it has finished."
    )]
    AnotherSyncRunning,
    #[error(transparent)]
    SignInRequired(#[from] SignInRequired),
    #[error(transparent)]
    Api(PcError),
    #[error(transparent)]
    Auth(AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("Cannot build the HTTP client: {0}")]
    Http(#[source] reqwest::Error),
    #[error("The sync run exceeded its deadline of {}s (run_deadline) and was stopped; committed pages are kept and the next run goes on. Raise run_deadline if runs are legitimately this long.", .deadline.as_secs())]
    DeadlineExceeded { deadline: Duration },
    #[error(
        "The sync run was cancelled (shutdown); committed pages are kept and the next run goes on."
    )]
    Cancelled,
    #[error(
        "Run {run_id} is no longer queued (it was already started or closed); not running it twice."
    )]
    RunNotQueued { run_id: i64 },
}

impl SyncError {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        self.exit().code()
    }

    pub(crate) fn exit(&self) -> Exit {
        match self {
            SyncError::AnotherSyncRunning => Exit::TempFail,
            SyncError::SignInRequired(e) => e.exit(),
            // A sign-in setting or token cache the operator must fix.
            SyncError::Auth(e) | SyncError::Api(PcError::Auth(e)) if e.exit() == Exit::Config => {
                Exit::Config
            }
            SyncError::Store(e) => e.exit(),
            _ => Exit::Failure,
        }
    }
}

impl From<PcError> for SyncError {
    fn from(e: PcError) -> Self {
        match e {
            PcError::SignInRequired(e) | PcError::Auth(AuthError::SignInRequired(e)) => e.into(),
            other => SyncError::Api(other),
        }
    }
}

impl From<AuthError> for SyncError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::SignInRequired(e) => e.into(),
            other => SyncError::Auth(other),
        }
    }
}
