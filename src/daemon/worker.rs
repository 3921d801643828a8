//! The single sync worker: it drains the one-slot trigger channel, one run at a time,
//! and keeps the slots that say which run is queued and which is running, for the manual
//! trigger and for the drain.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::control::{TriggerError, TriggerOutcome};
use super::{Shared, build_tokens, systemd};
use crate::metrics::Metrics;
use crate::store::StoreError;
use crate::store::runs::{self, RequestedMode, RunStatus, Trigger};
use crate::sync::{RunRequest, RunSummary, SyncEngine, SyncError};

/// The run waiting in the slot (created `queued` by a manual trigger) and the one running.
#[derive(Default)]
pub(super) struct RunSlots {
    queued: Option<i64>,
    running: Option<i64>,
}

/// When the pool has closed the connections a run left idle (its reaper looks once per
/// idle timeout), their buffers are freed too; one more trim then hands them back.
const IDLE_TRIM_AFTER: Duration =
    Duration::from_secs(2 * crate::store::POOL_IDLE_TIMEOUT.as_secs() + 30);

pub(super) async fn run(
    shared: Arc<Shared>,
    mut trigger_rx: mpsc::Receiver<Trigger>,
    stop: CancellationToken,
) {
    let mut trim_pending = false;
    loop {
        let trigger = tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(IDLE_TRIM_AFTER), if trim_pending => {
                trim_pending = false;
                release_freed_memory();
                continue;
            }
            msg = trigger_rx.recv() => match msg {
                Some(trigger) => trigger,
                None => return,
            },
        };
        let config = shared.config.borrow().clone();
        let queued = shared.slots.lock().await.queued.take();
        if !config.enabled {
            if let Some(id) = queued {
                close_run(
                    &shared.pool,
                    id,
                    RunStatus::Skipped,
                    "The integration was disabled before this run started.",
                )
                .await;
            }
            skip_disabled(&shared.metrics);
            continue;
        }
        let run_id = match queued {
            Some(id) => id,
            None => {
                match runs::create_queued(&shared.pool, trigger, RequestedMode::Auto, false).await {
                    Ok(id) => id,
                    Err(e) => {
                        tracing::error!(event = "sync_failed", error = %e, "Could not record a sync run; is the database reachable?");
                        continue;
                    }
                }
            }
        };
        let trigger = if queued.is_some() {
            Trigger::Manual
        } else {
            trigger
        };
        shared.slots.lock().await.running = Some(run_id);
        let tokens = shared.tokens.borrow().clone();
        let engine = match tokens {
            Some(tokens) => Ok(tokens),
            None => build_tokens(&config).map_err(SyncError::from),
        }
        .and_then(|tokens| {
            SyncEngine::new(config, shared.pool.clone(), tokens, shared.metrics.clone())
        });
        let result = match engine {
            Ok(engine) => {
                let request = RunRequest {
                    run_id: Some(run_id),
                    trigger,
                    ..RunRequest::default()
                };
                engine.run(request, stop.child_token()).await
            }
            Err(e) => Err(e),
        };
        shared.slots.lock().await.running = None;
        update_auth_metrics(&shared.metrics, &result);
        if let Err(SyncError::SignInRequired { reason }) = &result {
            announce_sign_in_required(&shared.pool, &config_now(&shared), reason).await;
        }
        if let Err(e) = refresh_last_success(&shared).await {
            tracing::debug!(event = "last_success_unknown", error = %e, "Could not read the last successful run.");
        }
        systemd::run_finished(run_id, &result);
        release_freed_memory();
        trim_pending = true;
        if stop.is_cancelled() {
            return;
        }
    }
}

/// The control loop's half of a manual trigger (the handle has checked the flag and the
/// sign-in): the run row is created `queued` now so the caller gets its id; a trigger
/// during a queued or running run returns that run instead. The flag is checked again
/// because a reload handled since the handle looked may have turned it off.
pub(super) async fn accept_manual(shared: &Shared) -> Result<TriggerOutcome, TriggerError> {
    if !shared.config.borrow().enabled {
        return Err(TriggerError::Disabled);
    }
    let mut slots = shared.slots.lock().await;
    if let Some(id) = slots.queued {
        return Ok(TriggerOutcome::Queued(id));
    }
    if let Some(id) = slots.running {
        return Ok(TriggerOutcome::AlreadyRunning(id));
    }
    // Another host of an HA pair may be running one.
    if let Some(active) = runs::find_active(&shared.pool).await? {
        if active.status == RunStatus::Running.as_str() {
            return Ok(TriggerOutcome::AlreadyRunning(active.id));
        }
    }
    let id = runs::create_queued(&shared.pool, Trigger::Manual, RequestedMode::Auto, false).await?;
    slots.queued = Some(id);
    // A full slot already wakes the worker, which takes `queued` first.
    let _ = shared.trigger_tx.try_send(Trigger::Manual);
    tracing::info!(
        event = "sync_queued",
        run_id = id,
        trigger = "manual",
        "Manual sync queued."
    );
    Ok(TriggerOutcome::Queued(id))
}

/// `last_success_timestamp_seconds` says when the data was last refreshed by any process:
/// seeded at start-up and re-read after every run, so neither a restart nor a host whose
/// runs the other host of an HA pair took (they end `skipped`) looks stale.
pub(super) async fn refresh_last_success(shared: &Shared) -> Result<(), StoreError> {
    if let Some(at) = runs::last_success_at(&shared.pool).await? {
        let at = at.timestamp_micros() as f64 / 1e6;
        let gauge = &shared.metrics.last_success;
        // The run just finished here set it from this host's clock: never move it back.
        if at > gauge.get() {
            gauge.set(at);
        }
    }
    Ok(())
}

/// After the grace period the run's future was dropped (its transaction rolled back):
/// record it as cancelled.
pub(super) async fn cancel_running(shared: &Shared) {
    let id = shared.slots.lock().await.running.take();
    if let Some(id) = id {
        close_run(
            &shared.pool,
            id,
            RunStatus::Cancelled,
            "Stopped by shutdown after the grace period; the page in flight was rolled back.",
        )
        .await;
        tracing::info!(
            event = "sync_cancelled",
            run_id = id,
            "The sync run was cancelled by shutdown."
        );
    }
}

/// The flag-off path: nothing is fetched, the skip is logged and counted.
pub(super) fn skip_disabled(metrics: &Metrics) {
    metrics.skipped_runs.inc();
    tracing::info!(
        event = "feature_flag_disabled",
        "Scheduled sync skipped: the Partner Center integration is disabled (HUNTER_PARTNER_CENTER_ENABLED=false)."
    );
}

fn config_now(shared: &Shared) -> Arc<crate::config::Config> {
    shared.config.borrow().clone()
}

/// `sign_in_required` once per spell without sign-in: keyed by the last success.
async fn announce_sign_in_required(pool: &PgPool, config: &crate::config::Config, reason: &str) {
    if config.notify.is_empty() {
        return;
    }
    let last = runs::last_success_at(pool).await.ok().flatten();
    let key = format!(
        "sign_in_required:{}",
        last.map_or_else(|| "never".to_owned(), |t| t.to_rfc3339())
    );
    let data = serde_json::json!({"reason": reason, "last_success_at": last});
    if let Err(e) = crate::notify::enqueue::operator(
        pool,
        &config.notify,
        crate::config::EventKind::SignInRequired,
        &key,
        data,
    )
    .await
    {
        tracing::warn!(event = "notify_store_error", error = %e, "Could not enqueue the sign-in-required notification.");
    }
}

fn update_auth_metrics(metrics: &Metrics, result: &Result<RunSummary, SyncError>) {
    let required = matches!(result, Err(SyncError::SignInRequired { .. }));
    metrics.sign_in_required.set(i64::from(required));
}

async fn close_run(pool: &PgPool, id: i64, status: RunStatus, message: &str) {
    let result = match pool.acquire().await {
        Ok(mut conn) => runs::finish(&mut conn, id, status, Some(message)).await,
        Err(e) => Err(StoreError::from(e)),
    };
    if let Err(e) = result {
        tracing::error!(event = "run_record_failed", run_id = id, error = %e, "Could not record the end of a sync run.");
    }
}

/// A run's pages and batches take a few MB that are freed when it ends, but glibc keeps
/// freed memory in its arenas, so without this an idle daemon holds its peak for good
/// (measured in docs/idle.md: about 4 MB of a 24 MB footprint).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only hands free pages of the allocator's own arenas back to
    // the kernel; it touches no memory the program uses.
    unsafe {
        libc::malloc_trim(0);
    }
}
