//! The daemon: builds everything from config and owns the control loop.
//!
//! Phases, as types: [`Daemon::build`] connects, migrates, closes stale runs and binds;
//! [`Daemon::run_until`] starts the scheduler, the single sync worker and the HTTP
//! server, then turns signals into messages for one loop (reload on SIGHUP, drain on
//! SIGTERM/SIGINT, a second signal quits at once). Tests call the same two functions
//! with their own shutdown future, as systemd's `run` does with none.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::auth::{AuthError, AuthState, SignInWatch, TokenProvider};
use crate::config::{self, Config, ConfigError, LoadOptions, Reload};
use crate::metrics::Metrics;
use crate::scheduler::{Schedule, Scheduler, SchedulerError};
use crate::store::runs::{self, RequestedMode, RunStatus, Trigger};
use crate::store::{self, StoreError};
use crate::sync::{RunRequest, SyncEngine, SyncError};
use crate::telemetry::LogHandle;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("Cannot listen on {addr}: {source}. Is another process using it? Change `listen`.")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("Cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("The HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// Why a manual trigger was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error(
        "Partner Center integration is disabled (HUNTER_PARTNER_CENTER_ENABLED is false); enable it to sync."
    )]
    Disabled,
    #[error("{0}")]
    SignInRequired(String),
    #[error("The daemon is shutting down; not accepting sync triggers.")]
    ShuttingDown,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a manual trigger answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TriggerOutcome {
    Queued(i64),
    AlreadyRunning(i64),
}

/// The daemon's live state, shared by the control loop, the worker and HTTP handlers.
struct Shared {
    pool: PgPool,
    metrics: Metrics,
    config: watch::Sender<Arc<Config>>,
    /// `None` while the integration is disabled and sign-in is not configured.
    tokens: RwLock<Option<TokenProvider>>,
    /// The one-slot channel: a full slot means a run is already pending.
    trigger_tx: mpsc::Sender<Trigger>,
    runs: tokio::sync::Mutex<RunSlots>,
    /// Written by the scheduler as ticks fire, read by health.
    next_run_at: Arc<Mutex<Option<DateTime<Utc>>>>,
    shutting_down: AtomicBool,
    /// Notices a `login` by another process while sign-in is required.
    sign_in_watch: SignInWatch,
}

/// The run waiting in the slot (created `queued` by a manual trigger) and the one running.
#[derive(Default)]
struct RunSlots {
    queued: Option<i64>,
    running: Option<i64>,
}

/// What HTTP handlers use to reach the running daemon.
#[derive(Clone)]
pub struct DaemonHandle {
    shared: Arc<Shared>,
}

impl DaemonHandle {
    /// Accepts a manual trigger. The run row is created `queued` now so the caller gets
    /// its id; a trigger during a queued or running run returns that run instead.
    pub async fn trigger_manual(&self) -> Result<TriggerOutcome, TriggerError> {
        let s = &self.shared;
        if s.shutting_down.load(Ordering::SeqCst) {
            return Err(TriggerError::ShuttingDown);
        }
        if !s.config.borrow().enabled {
            return Err(TriggerError::Disabled);
        }
        if let AuthState::SignInRequired { reason } = self.current_auth_state().await {
            return Err(TriggerError::SignInRequired(format!(
                "Sign-in required: run `partner-center-sync login` ({reason})."
            )));
        }
        let mut slots = s.runs.lock().await;
        if let Some(id) = slots.queued {
            return Ok(TriggerOutcome::Queued(id));
        }
        if let Some(id) = slots.running {
            return Ok(TriggerOutcome::AlreadyRunning(id));
        }
        // Another host of an HA pair may be running one.
        if let Some(active) = runs::find_active(&s.pool).await? {
            if active.status == RunStatus::Running.as_str() {
                return Ok(TriggerOutcome::AlreadyRunning(active.id));
            }
        }
        let id = runs::create_queued(&s.pool, Trigger::Manual, RequestedMode::Auto, false).await?;
        slots.queued = Some(id);
        // A full slot already wakes the worker, which takes `queued` first.
        let _ = s.trigger_tx.try_send(Trigger::Manual);
        tracing::info!(
            event = "sync_queued",
            run_id = id,
            trigger = "manual",
            "Manual sync queued."
        );
        Ok(TriggerOutcome::Queued(id))
    }

    pub fn tokens(&self) -> Option<TokenProvider> {
        self.shared
            .tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// What health, metrics and the trigger go by; `Unknown` until sign-in is configured.
    pub async fn current_auth_state(&self) -> AuthState {
        let Some(tokens) = self.tokens() else {
            return AuthState::Unknown;
        };
        let cache = self.shared.config.borrow().token_cache.clone();
        self.shared
            .sign_in_watch
            .current_state(&tokens, &cache)
            .await
    }

    pub fn next_run_at(&self) -> Option<DateTime<Utc>> {
        *self
            .shared
            .next_run_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shared.shutting_down.load(Ordering::SeqCst)
    }
}

/// A built daemon, bound but not yet running.
pub struct Daemon {
    listener: TcpListener,
    shared: Arc<Shared>,
    trigger_rx: mpsc::Receiver<Trigger>,
    load_options: Option<LoadOptions>,
    log: Option<LogHandle>,
}

impl Daemon {
    /// Connects, migrates, closes runs a previous process left behind, binds.
    /// `load_options` are re-read on SIGHUP (None: reload is refused, for tests that
    /// build a config in code).
    pub async fn build(
        config: Config,
        load_options: Option<LoadOptions>,
        log: Option<LogHandle>,
    ) -> Result<Self, DaemonError> {
        let pool = store::connect(config.require_database_url()?).await?;
        let applied = store::migrate(&pool).await?;
        if applied > 0 {
            tracing::info!(
                event = "migrations_applied",
                count = applied,
                "Applied database migrations."
            );
        }
        close_leftover_runs(&pool).await?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| DaemonError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let tokens = match build_tokens(&config) {
            Ok(tokens) => Some(tokens),
            Err(e) if config.enabled => return Err(e.into()),
            Err(_) => None,
        };
        let (trigger_tx, trigger_rx) = mpsc::channel(1);
        let (config_tx, _) = watch::channel(Arc::new(config));
        let shared = Arc::new(Shared {
            pool,
            metrics: Metrics::new(),
            config: config_tx,
            tokens: RwLock::new(tokens),
            trigger_tx,
            runs: tokio::sync::Mutex::new(RunSlots::default()),
            next_run_at: Arc::new(Mutex::new(None)),
            shutting_down: AtomicBool::new(false),
            sign_in_watch: SignInWatch::default(),
        });
        Ok(Self {
            listener,
            shared,
            trigger_rx,
            load_options,
            log,
        })
    }

    /// The address actually bound (tests bind port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.shared.config.borrow().listen)
    }

    pub fn handle(&self) -> DaemonHandle {
        DaemonHandle {
            shared: self.shared.clone(),
        }
    }

    /// Runs until `shutdown` resolves or SIGTERM/SIGINT arrives, then drains.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), DaemonError> {
        let Daemon {
            listener,
            shared,
            trigger_rx,
            load_options,
            log,
        } = self;
        let handle = DaemonHandle {
            shared: shared.clone(),
        };
        let addr = listener.local_addr().map_err(DaemonError::Serve)?;
        let stop_worker = CancellationToken::new();
        let worker = tokio::spawn(worker(shared.clone(), trigger_rx, stop_worker.clone()));

        let state = crate::http::AppState {
            pool: shared.pool.clone(),
            metrics: shared.metrics.clone(),
            config: shared.config.subscribe(),
            daemon: handle.clone(),
        };
        let stop_http = CancellationToken::new();
        let http_stopped = stop_http.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, crate::http::router(state))
                .with_graceful_shutdown(async move { http_stopped.cancelled().await })
                .await
        });

        let mut scheduler = start_scheduler(&shared).await?;
        let startup = { shared.config.borrow().clone() };
        if startup.sync_on_startup && startup.enabled {
            let _ = shared.trigger_tx.try_send(Trigger::Startup);
        }
        let mut signals = signal_hook_tokio::Signals::new([
            signal_hook::consts::SIGHUP,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGINT,
        ])
        .map_err(DaemonError::Signals)?;
        let watchdog = sd_notify::watchdog_enabled().map(|d| d / 3);
        let mut watchdog_ticks =
            tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
        notify(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&format!("Listening on {addr}.")),
        ]);
        tracing::info!(event = "daemon_started", %addr, version = env!("CARGO_PKG_VERSION"), enabled = startup.enabled, "Daemon started.");

        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(sig) = signals.next() => match sig {
                    signal_hook::consts::SIGHUP => {
                        scheduler = reload(&shared, load_options.as_ref(), log.as_ref(), scheduler).await;
                    }
                    _ => break,
                },
                _ = watchdog_ticks.tick(), if watchdog.is_some() => notify(&[sd_notify::NotifyState::Watchdog]),
            }
        }

        // Drain: no new triggers, the current page may commit within the grace period.
        shared.shutting_down.store(true, Ordering::SeqCst);
        notify(&[sd_notify::NotifyState::Stopping]);
        let grace = shared.config.borrow().shutdown_grace;
        tracing::info!(
            event = "shutdown_started",
            grace_seconds = grace.as_secs(),
            "Shutting down: finishing the current page, then stopping."
        );
        scheduler.stop().await;
        stop_worker.cancel();
        let mut worker = worker;
        let drained = tokio::select! {
            r = &mut worker => r.is_ok(),
            () = tokio::time::sleep(grace) => false,
            _ = signals.next() => {
                tracing::warn!(event = "shutdown_forced", "Second signal: exiting at once.");
                std::process::exit(1);
            }
        };
        if !drained {
            worker.abort();
            let _ = worker.await;
            cancel_running(&shared).await;
        }
        stop_http.cancel();
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(DaemonError::Serve(e)),
            Err(e) => {
                tracing::error!(event = "http_task_failed", error = %e, "The HTTP server task ended abnormally.")
            }
        }
        tracing::info!(event = "daemon_stopped", "Daemon stopped.");
        Ok(())
    }
}

/// The single sync worker: drains the one-slot channel, one run at a time.
async fn worker(
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
        let queued = {
            let mut slots = shared.runs.lock().await;
            slots.queued.take()
        };
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
        shared.runs.lock().await.running = Some(run_id);
        let tokens = shared
            .tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
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
        shared.runs.lock().await.running = None;
        update_auth_metrics(&shared, &result);
        let status = match &result {
            Ok(summary) => format!("Last sync #{run_id} {}: {summary}", summary.status.as_str()),
            Err(SyncError::AnotherSyncRunning) => {
                format!("Sync #{run_id} skipped: another sync is running.")
            }
            Err(e) => format!("Last sync #{run_id} failed: {e}"),
        };
        notify(&[sd_notify::NotifyState::Status(&status)]);
        release_freed_memory();
        trim_pending = true;
        if stop.is_cancelled() {
            return;
        }
    }
}

/// When the pool has closed the connections a run left idle (its reaper looks once per
/// idle timeout), their buffers are freed too; one more trim then hands them back.
const IDLE_TRIM_AFTER: Duration =
    Duration::from_secs(2 * crate::store::POOL_IDLE_TIMEOUT.as_secs() + 30);

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

fn update_auth_metrics(shared: &Shared, result: &Result<crate::sync::RunSummary, SyncError>) {
    let required = matches!(result, Err(SyncError::SignInRequired { .. }));
    shared.metrics.sign_in_required.set(i64::from(required));
}

/// The flag-off path: nothing is fetched, the skip is logged and counted.
fn skip_disabled(metrics: &Metrics) {
    metrics.skipped_runs.inc();
    tracing::info!(
        event = "feature_flag_disabled",
        "Scheduled sync skipped: the Partner Center integration is disabled (HUNTER_PARTNER_CENTER_ENABLED=false)."
    );
}

async fn start_scheduler(shared: &Arc<Shared>) -> Result<Scheduler, SchedulerError> {
    let schedule = Schedule::from_config(&shared.config.borrow());
    let tick_shared = shared.clone();
    let scheduler = Scheduler::start(schedule.clone(), shared.next_run_at.clone(), move || {
        if !tick_shared.config.borrow().enabled {
            skip_disabled(&tick_shared.metrics);
            return;
        }
        // A full slot means a run is already pending: this tick coalesces into it.
        let _ = tick_shared.trigger_tx.try_send(Trigger::Schedule);
    })
    .await?;
    tracing::info!(event = "schedule_set", schedule = ?schedule, "Sync schedule set.");
    Ok(scheduler)
}

/// SIGHUP: re-read file, credentials and environment; on success swap in the new
/// settings, on failure keep the old ones. systemd sees RELOADING=1 then READY=1 either way.
async fn reload(
    shared: &Arc<Shared>,
    options: Option<&LoadOptions>,
    log: Option<&LogHandle>,
    scheduler: Scheduler,
) -> Scheduler {
    notify(&[sd_notify::NotifyState::Reloading, monotonic_now()]);
    let Some(options) = options else {
        tracing::warn!(
            event = "config_reload_failed",
            "This daemon was built without a config source; reload ignored."
        );
        notify(&[sd_notify::NotifyState::Ready]);
        return scheduler;
    };
    // The environment cannot change under a running process; re-reading it is harmless.
    let fresh = LoadOptions {
        env: std::env::vars().collect(),
        ..options.clone()
    };
    let scheduler = match config::load(&fresh) {
        Err(e) => {
            let problems: Vec<String> = e.problems.iter().map(ToString::to_string).collect();
            tracing::error!(event = "config_reload_failed", problems = ?problems, "Configuration reload rejected; the running configuration stays in effect.");
            scheduler
        }
        Ok(loaded) => apply(shared, loaded.config, log, scheduler).await,
    };
    notify(&[sd_notify::NotifyState::Ready]);
    scheduler
}

async fn apply(
    shared: &Arc<Shared>,
    mut new: Config,
    log: Option<&LogHandle>,
    scheduler: Scheduler,
) -> Scheduler {
    let old = shared.config.borrow().clone();
    let changes = config::changes(&old, &new);
    let needs_restart: Vec<&str> = changes
        .iter()
        .filter(|c| c.reload == Reload::Restart)
        .map(|c| c.key)
        .collect();
    if !needs_restart.is_empty() {
        tracing::warn!(event = "config_restart_required", keys = ?needs_restart, "These settings change only after a restart; keeping the running values.");
        new.keep_restart_values(&old);
    }
    let applied: Vec<&str> = changes
        .iter()
        .filter(|c| c.reload != Reload::Restart)
        .map(|c| c.key)
        .collect();
    if let Some(log) = log {
        if let Err(e) = log.set_level(&new.log_level) {
            tracing::warn!(event = "log_level_unchanged", error = %e, "Could not apply the new log level.");
        }
    }
    let missing = shared
        .tokens
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .is_none();
    if missing || changes.iter().any(|c| c.reload == Reload::Auth) {
        match build_tokens(&new) {
            Ok(tokens) => *shared.tokens.write().unwrap_or_else(|p| p.into_inner()) = Some(tokens),
            Err(_) if !new.enabled => {}
            Err(e) => {
                tracing::warn!(event = "auth_reload_failed", error = %e, "Could not rebuild sign-in with the new settings; keeping the old ones.")
            }
        }
    }
    let new = Arc::new(new);
    let schedule_changed = Schedule::from_config(&new) != *scheduler.schedule();
    shared.config.send_replace(new);
    let scheduler = if schedule_changed {
        scheduler.stop().await;
        match start_scheduler(shared).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(event = "config_reload_failed", error = %e, "The new schedule could not start; going back to the previous configuration.");
                shared.config.send_replace(old);
                match start_scheduler(shared).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(event = "scheduler_failed", error = %e, "No schedule could start; exiting so systemd restarts the daemon.");
                        std::process::exit(1);
                    }
                }
            }
        }
    } else {
        scheduler
    };
    tracing::info!(event = "config_reloaded", changed = ?applied, "Configuration reloaded.");
    scheduler
}

fn build_tokens(config: &Config) -> Result<TokenProvider, AuthError> {
    let http = crate::outbound::http_client(config).map_err(|e| AuthError::Transient {
        message: e.to_string(),
    })?;
    TokenProvider::new(config, http)
}

/// Runs a previous process of this host left `queued` will never start: close them.
/// `running` ones are closed by the next run that holds the sync lock.
async fn close_leftover_runs(pool: &PgPool) -> Result<(), StoreError> {
    let closed = runs::close_leftover_queued(pool, runs::hostname().as_deref()).await?;
    if closed > 0 {
        tracing::info!(
            event = "stale_run_closed",
            count = closed,
            "Closed queued runs left by a previous process."
        );
    }
    if let Some(lock) = store::lock::try_acquire(pool).await? {
        for stale in runs::close_stale(pool, None).await? {
            tracing::warn!(
                event = "stale_run_closed",
                run_id = stale.id,
                "Closed a run left `running` by a process that stopped; marked it failed."
            );
        }
        let _ = lock.release().await;
    }
    Ok(())
}

/// After the grace period the run's future was dropped (its transaction rolled back):
/// record it as cancelled.
async fn cancel_running(shared: &Shared) {
    let id = shared.runs.lock().await.running.take();
    if let Some(id) = id {
        close_run(
            &shared.pool,
            id,
            RunStatus::Cancelled,
            "Stopped by shutdown after the grace period; the page in flight was rolled back.",
        )
        .await;
        tracing::warn!(
            event = "sync_cancelled",
            run_id = id,
            "The sync run was cancelled by shutdown."
        );
    }
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

fn monotonic_now() -> sd_notify::NotifyState<'static> {
    sd_notify::NotifyState::monotonic_usec_now().unwrap_or(sd_notify::NotifyState::MonotonicUsec(0))
}

/// No-op outside systemd (`NOTIFY_SOCKET` unset).
fn notify(states: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(event = "sd_notify_failed", error = %e, "Could not notify systemd.");
    }
}
