//! The control loop's vocabulary. Every source (signals, the caller's shutdown future,
//! the HTTP trigger, the watchdog timer) becomes one [`Control`] message, so one
//! `select!` decides everything in order: a trigger cannot race a reload or the drain.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use tokio::sync::oneshot;

use crate::auth::SignInRequired;
use crate::store::StoreError;

/// The signals the daemon turns into messages; any other keeps its default action.
pub(super) const SIGNALS: [i32; 3] = [SIGHUP, SIGTERM, SIGINT];

#[derive(Debug)]
pub(super) enum Control {
    /// SIGTERM, SIGINT or the caller's shutdown future: drain, then stop.
    Shutdown,
    /// SIGHUP: re-read the configuration and swap it in if it is valid.
    Reload,
    /// A manual trigger from the HTTP API; the loop answers on the channel.
    Trigger(oneshot::Sender<Result<TriggerOutcome, TriggerError>>),
    /// A third of systemd's watchdog period passed: tell it the loop is alive.
    Watchdog,
}

impl Control {
    /// SIGHUP reloads; the other [`SIGNALS`] (SIGTERM, SIGINT) stop.
    pub(super) fn from_signal(signal: i32) -> Self {
        if signal == SIGHUP {
            Control::Reload
        } else {
            Control::Shutdown
        }
    }
}

/// Why a manual trigger was not accepted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TriggerError {
    #[error(
        "Partner Center integration is disabled (HUNTER_PARTNER_CENTER_ENABLED is false); enable it to sync."
    )]
    Disabled,
    #[error(transparent)]
    SignInRequired(#[from] SignInRequired),
    #[error("The daemon is shutting down; not accepting sync triggers.")]
    ShuttingDown,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a manual trigger answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TriggerOutcome {
    Queued(i64),
    AlreadyRunning(i64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hup_reloads_and_term_and_int_stop() {
        let mapped: Vec<String> = SIGNALS
            .iter()
            .map(|s| format!("{:?}", Control::from_signal(*s)))
            .collect();
        assert_eq!(mapped, ["Reload", "Shutdown", "Shutdown"]);
    }
}
