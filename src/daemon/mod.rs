//! The daemon: builds everything from config and owns the control loop.
//!
//! Phases, as types: [`Daemon::build`] connects, migrates, closes stale runs and binds;
//! [`Daemon::run_until`] starts the scheduler, the single sync worker, the notification
//! delivery task (`notify::deliver`) and the HTTP server, then acts on one `Control` message at a time until told to stop, and
//! drains. Tests call the same two functions with their own shutdown future, as
//! systemd's `run` does with none.
//!
//! - `control.rs`: the messages (signals, the HTTP trigger, the watchdog timer);
//! - `handle.rs`: what `http` may ask (`DaemonHandle`); the only part `http` imports;
//! - `worker.rs`: the sync worker and its run slots;
//! - `reload.rs`: SIGHUP, answered with a `ReloadOutcome`;
//! - `systemd.rs`: sd_notify.

mod control;
pub(crate) mod handle;
mod reload;
mod systemd;
mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::{AuthError, SignInWatch, TokenProvider};
use crate::config::{Config, ConfigError, LoadOptions};
use crate::exit::Exit;
use crate::metrics::Metrics;
use crate::scheduler::{Schedule, Scheduler, SchedulerError};
use crate::store::runs::{self, Trigger};
use crate::store::{self, StoreError};
use crate::telemetry::LogHandle;
use control::Control;
use handle::DaemonHandle;
use reload::ReloadOutcome;

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

/// What the control loop, the worker and scheduler ticks share.
struct Shared {
    pool: PgPool,
    metrics: Metrics,
    config: watch::Sender<Arc<Config>>,
    /// `None` while the integration is disabled and sign-in is not configured.
    tokens: watch::Sender<Option<TokenProvider>>,
    /// The one-slot channel: a full slot means a run is already pending.
    trigger_tx: mpsc::Sender<Trigger>,
    slots: tokio::sync::Mutex<worker::RunSlots>,
    /// Written by the scheduler as ticks fire, read by health.
    next_run_at: Arc<Mutex<Option<DateTime<Utc>>>>,
}

/// Messages wait here while the loop is busy (a reload, a trigger's two queries).
const CONTROL_BACKLOG: usize = 16;

/// A built daemon, bound but not yet running.
pub struct Daemon {
    listener: TcpListener,
    shared: Arc<Shared>,
    trigger_rx: mpsc::Receiver<Trigger>,
    control_tx: mpsc::Sender<Control>,
    control_rx: mpsc::Receiver<Control>,
    sign_in_watch: Arc<SignInWatch>,
    load_options: Option<LoadOptions>,
    log: Option<LogHandle>,
    /// Routes served beside the daemon's own (the demo's inbox), behind `api_token` too.
    extra_routes: Option<axum::Router>,
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
        let pool = store::connect(config.require_database_url()?, &config.db_schema).await?;
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
        let (control_tx, control_rx) = mpsc::channel(CONTROL_BACKLOG);
        let shared = Arc::new(Shared {
            pool,
            metrics: Metrics::new(),
            config: watch::Sender::new(Arc::new(config)),
            tokens: watch::Sender::new(tokens),
            trigger_tx,
            slots: tokio::sync::Mutex::default(),
            next_run_at: Arc::default(),
        });
        worker::refresh_last_success(&shared).await?;
        Ok(Self {
            listener,
            shared,
            trigger_rx,
            control_tx,
            control_rx,
            sign_in_watch: Arc::default(),
            load_options,
            log,
            extra_routes: None,
        })
    }

    /// Serves `routes` beside the daemon's own, so a tool around the daemon (the demo) can
    /// show its data in the same page without another origin.
    pub fn with_routes(mut self, routes: axum::Router) -> Self {
        self.extra_routes = Some(routes);
        self
    }

    /// The address actually bound (tests bind port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.shared.config.borrow().listen)
    }

    fn handle(&self) -> DaemonHandle {
        DaemonHandle::new(
            self.control_tx.clone(),
            self.shared.config.subscribe(),
            self.shared.tokens.subscribe(),
            self.shared.next_run_at.clone(),
            self.sign_in_watch.clone(),
        )
    }

    /// Runs until `shutdown` resolves or SIGTERM/SIGINT arrives, then drains.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), DaemonError> {
        let handle = self.handle();
        let Daemon {
            listener,
            shared,
            trigger_rx,
            mut control_rx,
            load_options,
            log,
            extra_routes,
            ..
        } = self;
        let addr = listener.local_addr().map_err(DaemonError::Serve)?;
        let stop_worker = CancellationToken::new();
        let mut worker = tokio::spawn(worker::run(shared.clone(), trigger_rx, stop_worker.clone()));
        // Its own task and connections: a slow or failing webhook never holds up a run.
        let stop_notify = CancellationToken::new();
        let notifier = tokio::spawn(crate::notify::deliver::run(
            shared.pool.clone(),
            shared.config.subscribe(),
            shared.metrics.clone(),
            stop_notify.clone(),
        ));
        let (stop_http, server) = serve(listener, &shared, handle, extra_routes);

        let mut scheduler = Some(start_scheduler(&shared).await?);
        let startup = { shared.config.borrow().clone() };
        if startup.sync_on_startup && startup.enabled {
            let _ = shared.trigger_tx.try_send(Trigger::Startup);
        }
        let mut signals =
            signal_hook_tokio::Signals::new(control::SIGNALS).map_err(DaemonError::Signals)?;
        let watchdog = systemd::watchdog_interval();
        let mut watchdog_ticks =
            tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
        systemd::started(addr);
        tracing::info!(event = "daemon_started", %addr, version = env!("CARGO_PKG_VERSION"), enabled = startup.enabled,
            "Daemon {} started, listening on http://{addr}; the Partner Center integration is {}.",
            env!("CARGO_PKG_VERSION"), if startup.enabled { "enabled" } else { "disabled" });

        tokio::pin!(shutdown);
        let mut fatal = None;
        loop {
            let message = tokio::select! {
                () = &mut shutdown => Control::Shutdown,
                Some(signal) = signals.next() => Control::from_signal(signal),
                Some(message) = control_rx.recv() => message,
                _ = watchdog_ticks.tick(), if watchdog.is_some() => Control::Watchdog,
            };
            match message {
                Control::Shutdown => break,
                Control::Reload => {
                    systemd::reloading();
                    let outcome = reload::reload(
                        &shared,
                        load_options.as_ref(),
                        log.as_ref(),
                        &mut scheduler,
                    )
                    .await;
                    outcome.log();
                    if let ReloadOutcome::Fatal(e) = outcome {
                        fatal = Some(e);
                        break;
                    }
                    systemd::reloaded();
                }
                Control::Trigger(reply) => {
                    let _ = reply.send(worker::accept_manual(&shared).await);
                }
                Control::Watchdog => systemd::watchdog(),
            }
        }

        // Drain: no new triggers (handles see the channel closed), the current page may
        // commit within the grace period.
        drop(control_rx);
        systemd::stopping();
        let grace = shared.config.borrow().shutdown_grace;
        tracing::info!(
            event = "shutdown_started",
            grace_seconds = grace.as_secs(),
            "Shutting down: finishing the current page, then stopping."
        );
        if let Some(scheduler) = scheduler.take() {
            scheduler.stop().await;
        }
        stop_worker.cancel();
        // A delivery cut short is sent again after its lease: at least once, never lost.
        stop_notify.cancel();
        notifier.abort();
        match drain(&mut worker, grace, signals.next()).await {
            Drain::Finished => {}
            Drain::Abandoned => {
                worker.abort();
                let _ = worker.await;
                worker::cancel_running(&shared).await;
            }
            Drain::Forced => {
                tracing::warn!(event = "shutdown_forced", "Second signal: exiting at once.");
                std::process::exit(i32::from(Exit::Failure.code()));
            }
        }
        stop_http.cancel();
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(DaemonError::Serve(e)),
            Err(e) => {
                tracing::error!(event = "http_task_failed", error = %e, "The HTTP server task ended abnormally.")
            }
        }
        if let Some(e) = fatal {
            return Err(e.into());
        }
        tracing::info!(event = "daemon_stopped", "Daemon stopped.");
        Ok(())
    }
}

/// Serves the HTTP API until the returned token is cancelled.
fn serve(
    listener: TcpListener,
    shared: &Shared,
    handle: DaemonHandle,
    extra_routes: Option<axum::Router>,
) -> (CancellationToken, JoinHandle<std::io::Result<()>>) {
    let state = crate::http::AppState {
        pool: shared.pool.clone(),
        metrics: shared.metrics.clone(),
        config: shared.config.subscribe(),
        daemon: handle,
    };
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, crate::http::router(state, extra_routes))
            .with_graceful_shutdown(async move { stopped.cancelled().await })
            .await
    });
    (stop, server)
}

/// How waiting for the worker ended.
#[derive(Debug, PartialEq)]
enum Drain {
    /// The run (if any) ended by itself.
    Finished,
    /// The grace period ran out (or the worker task failed): the run must be closed.
    Abandoned,
    /// A second signal: the operator wants out now.
    Forced,
}

/// Waits at most `grace` for the worker, which was told to stop after its current page.
async fn drain<S>(
    worker: &mut JoinHandle<()>,
    grace: Duration,
    second_signal: impl Future<Output = S>,
) -> Drain {
    tokio::select! {
        r = worker => if r.is_ok() { Drain::Finished } else { Drain::Abandoned },
        () = tokio::time::sleep(grace) => Drain::Abandoned,
        _ = second_signal => Drain::Forced,
    }
}

async fn start_scheduler(shared: &Arc<Shared>) -> Result<Scheduler, SchedulerError> {
    let schedule = Schedule::from_config(&shared.config.borrow());
    let tick_shared = shared.clone();
    let scheduler = Scheduler::start(schedule.clone(), shared.next_run_at.clone(), move || {
        if !tick_shared.config.borrow().enabled {
            worker::skip_disabled(&tick_shared.metrics);
            return;
        }
        // A full slot means a run is already pending: this tick coalesces into it.
        let _ = tick_shared.trigger_tx.try_send(Trigger::Schedule);
    })
    .await?;
    tracing::info!(event = "schedule_set", schedule = %schedule, "Sync schedule set: {schedule}.");
    Ok(scheduler)
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

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(30);

    fn worker_taking(d: Duration) -> JoinHandle<()> {
        tokio::spawn(tokio::time::sleep(d))
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_that_ends_within_the_grace_period_is_waited_for() {
        let started = tokio::time::Instant::now();
        let mut worker = worker_taking(Duration::from_secs(5));
        let outcome = drain(&mut worker, GRACE, std::future::pending::<()>()).await;
        assert_eq!(outcome, Drain::Finished);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_past_the_grace_period_is_abandoned_when_the_grace_ends() {
        let started = tokio::time::Instant::now();
        let mut worker = worker_taking(Duration::from_secs(3600));
        let outcome = drain(&mut worker, GRACE, std::future::pending::<()>()).await;
        assert_eq!(outcome, Drain::Abandoned);
        assert_eq!(started.elapsed(), GRACE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_signal_does_not_wait_for_the_grace_period() {
        let started = tokio::time::Instant::now();
        let mut worker = worker_taking(Duration::from_secs(3600));
        let second = tokio::time::sleep(Duration::from_secs(2));
        assert_eq!(drain(&mut worker, GRACE, second).await, Drain::Forced);
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_that_failed_is_abandoned_so_its_run_gets_closed() {
        let mut worker = tokio::spawn(async { panic!("the worker task failed") });
        let outcome = drain(&mut worker, GRACE, std::future::pending::<()>()).await;
        assert_eq!(outcome, Drain::Abandoned);
    }
}
