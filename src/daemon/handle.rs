//! What the HTTP layer may ask of the running daemon, and all it may see of it.
//!
//! `http` imports only this module, and this module imports nothing of `daemon` but the
//! control messages: `daemon` → `http` → `daemon::handle` has no way back, so the
//! daemon's internals change without touching `http`. A trait owned by `http` would cut
//! even that edge, at the price of boxed futures and a second type for one implementation.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};

use super::control::Control;
pub(crate) use super::control::{TriggerError, TriggerOutcome};
use crate::auth::{AuthState, SignInWatch, TokenProvider};
use crate::config::Config;

/// Cheap to clone; every clone talks to the same daemon.
#[derive(Clone)]
pub(crate) struct DaemonHandle {
    control: mpsc::Sender<Control>,
    config: watch::Receiver<Arc<Config>>,
    /// `None` while the integration is disabled and sign-in is not configured.
    tokens: watch::Receiver<Option<TokenProvider>>,
    /// Written by the scheduler as ticks fire.
    next_run_at: Arc<Mutex<Option<DateTime<Utc>>>>,
    sign_in_watch: Arc<SignInWatch>,
}

impl DaemonHandle {
    pub(super) fn new(
        control: mpsc::Sender<Control>,
        config: watch::Receiver<Arc<Config>>,
        tokens: watch::Receiver<Option<TokenProvider>>,
        next_run_at: Arc<Mutex<Option<DateTime<Utc>>>>,
        sign_in_watch: Arc<SignInWatch>,
    ) -> Self {
        Self {
            control,
            config,
            tokens,
            next_run_at,
            sign_in_watch,
        }
    }

    /// Accepts a manual trigger. The checks that need no decision of the loop answer
    /// here, so a refused trigger never waits for a reload; the loop then queues the run.
    pub(crate) async fn trigger_manual(&self) -> Result<TriggerOutcome, TriggerError> {
        if self.is_shutting_down() {
            return Err(TriggerError::ShuttingDown);
        }
        if !self.config.borrow().enabled {
            return Err(TriggerError::Disabled);
        }
        if let AuthState::SignInRequired(required) = self.current_auth_state().await {
            return Err(required.into());
        }
        let (reply, answer) = oneshot::channel();
        // The loop closes its end when the drain starts, dropping unanswered triggers.
        if self.control.send(Control::Trigger(reply)).await.is_err() {
            return Err(TriggerError::ShuttingDown);
        }
        answer.await.unwrap_or(Err(TriggerError::ShuttingDown))
    }

    /// What health, metrics and the trigger go by; `Unknown` until sign-in is configured.
    pub(crate) async fn current_auth_state(&self) -> AuthState {
        let Some(tokens) = self.tokens.borrow().clone() else {
            return AuthState::Unknown;
        };
        let cache = self.config.borrow().token_cache.clone();
        self.sign_in_watch.current_state(&tokens, &cache).await
    }

    pub(crate) fn next_run_at(&self) -> Option<DateTime<Utc>> {
        *self.next_run_at.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True from the start of the drain: the loop has closed its end of the channel.
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.control.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(config: Config) -> (DaemonHandle, mpsc::Receiver<Control>) {
        let (control, loop_end) = mpsc::channel(1);
        let (_, config) = watch::channel(Arc::new(config));
        let (_, tokens) = watch::channel(None);
        let handle = DaemonHandle::new(
            control,
            config,
            tokens,
            Arc::default(),
            Arc::new(SignInWatch::default()),
        );
        (handle, loop_end)
    }

    fn enabled() -> Config {
        Config {
            enabled: true,
            ..Config::default()
        }
    }

    #[tokio::test]
    async fn a_trigger_is_answered_by_the_loop() {
        let (handle, mut loop_end) = handle(enabled());
        let control_loop = tokio::spawn(async move {
            match loop_end.recv().await {
                Some(Control::Trigger(reply)) => {
                    let _ = reply.send(Ok(TriggerOutcome::Queued(7)));
                }
                other => panic!("expected a trigger, got {other:?}"),
            }
        });
        assert_eq!(
            handle.trigger_manual().await.expect("accepted"),
            TriggerOutcome::Queued(7)
        );
        control_loop.await.expect("loop task");
    }

    #[tokio::test]
    async fn with_the_flag_off_the_loop_is_not_asked() {
        let (handle, mut loop_end) = handle(Config::default());
        assert!(matches!(
            handle.trigger_manual().await,
            Err(TriggerError::Disabled)
        ));
        assert!(loop_end.try_recv().is_err(), "nothing reached the loop");
    }

    #[tokio::test]
    async fn once_the_loop_has_stopped_listening_triggers_are_refused() {
        let (handle, loop_end) = handle(enabled());
        assert!(!handle.is_shutting_down());
        drop(loop_end);
        assert!(handle.is_shutting_down());
        assert!(matches!(
            handle.trigger_manual().await,
            Err(TriggerError::ShuttingDown)
        ));
    }

    #[tokio::test]
    async fn a_trigger_the_loop_drops_unanswered_is_refused() {
        let (handle, mut loop_end) = handle(enabled());
        let control_loop = tokio::spawn(async move {
            // The drain starts with this trigger still in the channel.
            let pending = loop_end.recv().await;
            drop(pending);
        });
        assert!(matches!(
            handle.trigger_manual().await,
            Err(TriggerError::ShuttingDown)
        ));
        control_loop.await.expect("loop task");
    }
}
