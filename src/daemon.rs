//! Builds everything from config and owns the control loop.

/// What HTTP handlers use to reach the running daemon (trigger, status).
#[derive(Clone, Default)]
pub struct DaemonHandle {}
