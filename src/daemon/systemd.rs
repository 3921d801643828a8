//! What systemd hears (`Type=notify`): READY, RELOADING, STATUS, WATCHDOG and STOPPING.
//! Every call is a no-op outside systemd (`NOTIFY_SOCKET` unset).

use std::net::SocketAddr;
use std::time::Duration;

use sd_notify::NotifyState;

use crate::sync::{RunSummary, SyncError};

pub(super) fn started(addr: SocketAddr) {
    notify(&[
        NotifyState::Ready,
        NotifyState::Status(&format!("Listening on {addr}.")),
    ]);
}

/// systemd wants the monotonic time with RELOADING=1 to match it with the READY=1 after.
pub(super) fn reloading() {
    let now = NotifyState::monotonic_usec_now().unwrap_or(NotifyState::MonotonicUsec(0));
    notify(&[NotifyState::Reloading, now]);
}

pub(super) fn reloaded() {
    notify(&[NotifyState::Ready]);
}

pub(super) fn stopping() {
    notify(&[NotifyState::Stopping]);
}

pub(super) fn watchdog() {
    notify(&[NotifyState::Watchdog]);
}

/// How often to ping: a third of `WatchdogSec`, so one late ping is not fatal; `None`
/// when the unit has no watchdog.
pub(super) fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|period| period / 3)
}

/// `systemctl status` shows the last run's outcome.
pub(super) fn run_finished(run_id: i64, result: &Result<RunSummary, SyncError>) {
    notify(&[NotifyState::Status(&run_status(run_id, result))]);
}

fn run_status(run_id: i64, result: &Result<RunSummary, SyncError>) -> String {
    match result {
        Ok(summary) => format!("Last sync #{run_id} {}: {summary}", summary.status.as_str()),
        Err(SyncError::AnotherSyncRunning) => {
            format!("Sync #{run_id} skipped: another sync is running.")
        }
        Err(e) => format!("Last sync #{run_id} failed: {e}"),
    }
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(event = "sd_notify_failed", error = %e, "Could not notify systemd.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_names_the_run_and_its_outcome() {
        assert_eq!(
            run_status(3, &Err(SyncError::AnotherSyncRunning)),
            "Sync #3 skipped: another sync is running."
        );
        assert!(
            run_status(4, &Err(SyncError::Cancelled)).starts_with("Last sync #4 failed: "),
            "{}",
            run_status(4, &Err(SyncError::Cancelled))
        );
    }
}
