//! Notifications: the outbox rows a run enqueues, and the task that delivers them.
//!
//! - `enqueue.rs`: from a run's writes to outbox rows (filters, dedupe keys, the import
//!   summary, the end-of-run release and digest), in the run's transactions;
//! - `message.rs`: what a message says, as a Teams card, Slack blocks or our JSON;
//! - `deliver.rs`: the delivery task (claim, POST, retry with backoff and jitter), the
//!   signature, the stale-sync check;
//! - `test_send.rs`: `partner-center-sync notify test NAME`.
//!
//! Data flows config -> sync -> notify -> store: `sync` calls `enqueue`, the daemon
//! spawns `deliver`; all SQL stays in `store::notifications`.

pub(crate) mod deliver;
pub(crate) mod enqueue;
mod message;
pub(crate) mod test_send;
