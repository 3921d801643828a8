//! One sync run: fetch pages, upsert rows, advance the watermark with the last page.
//!
//! A run is two tasks joined by a small bounded channel: the fetcher pulls pages (one at
//! a time, following `@odata.nextLink`) and extracts typed columns; the writer commits
//! whatever pages have arrived in one transaction, together with the run's counters. So
//! fetching and writing overlap, memory stays flat whatever the dataset size, and a kill
//! at any moment leaves only whole batches behind. The watermark, the missing marks of a
//! full pass and the run's final status commit in the transaction of the last page.
//! The change history (written by the upsert itself) and the notifications outbox
//! (`notify::enqueue`) commit in the same transactions as the rows that caused them.
//!
//! - `plan.rs`: the pure decision (incremental or full, from when, the next cursor).
//! - `pipeline.rs`: fetch -> write, and the `Sink` a real run writes with.
//! - `dry_run.rs`: the `Sink` of `--dry-run`, which compares instead of writing.
//! - `summary.rs`: what a run reports: live progress and the final summary.
//! - `error.rs`: [`SyncError`], what a run can fail with.
//! - `extract.rs`, `domain.rs`: a raw referral's typed columns and company domain.
//!
//! Every run happens inside a `sync_run` span carrying `run_id`, `trigger` and `mode`, so
//! the events within name them without repeating them.

mod domain;
mod dry_run;
mod error;
pub mod extract;
mod pipeline;
mod plan;
mod summary;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::auth::TokenProvider;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::notify::enqueue::Enqueuer;
use crate::partner_center::{PartnerCenterClient, RetryBudget};
use crate::store::runs::Counts;
use crate::store::state::SyncState;
use crate::store::{self, StoreError, lock, runs};
use dry_run::DryRun;
use pipeline::{Flat, Source, Writer};
use plan::{Plan, Policy};

pub use crate::store::runs::{Mode, RequestedMode, RunStatus, Trigger};
pub use error::SyncError;
pub(crate) use plan::parse_since;
pub use summary::{Progress, RunSummary};

/// What the scheduler, the HTTP trigger and the CLI ask for.
#[derive(Debug, Default)]
pub struct RunRequest {
    /// A row the HTTP trigger already created as `queued`; else the run creates one.
    pub run_id: Option<i64>,
    pub trigger: Trigger,
    pub mode: RequestedMode,
    pub dry_run: bool,
    /// Read only referrals updated since then (CLI `--since`).
    pub since: Option<DateTime<Utc>>,
    pub progress: Option<watch::Sender<Progress>>,
}

#[derive(Clone)]
pub struct SyncEngine {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<Config>,
    pool: PgPool,
    client: PartnerCenterClient,
    metrics: Metrics,
}

/// What a pass does with the batches it fetched: a run writes them, a dry run compares
/// them with the table. The skeleton around it ([`SyncEngine::pass`]) is shared.
trait Sink {
    /// The plan is decided; the pass has not fetched anything yet.
    async fn planned(&mut self, plan: &Plan) -> Result<(), SyncError>;
    /// The first page has arrived and the plan is final.
    async fn opened(&mut self, pass: &Pass<'_>) -> Result<(), SyncError>;
    /// One batch; `is_last` ends the pass. Adds its counts to `totals`.
    async fn batch(
        &mut self,
        pass: &Pass<'_>,
        flat: Flat,
        is_last: bool,
        totals: &mut Totals,
    ) -> Result<(), SyncError>;
    /// After the last batch.
    async fn finished(&mut self, pass: &Pass<'_>, totals: &mut Totals) -> Result<(), SyncError>;
}

/// A pass under way, as its sink sees it.
struct Pass<'a> {
    plan: Plan,
    /// The cursor as stored when the pass started.
    stored: &'a SyncState,
    /// When the run started (the database's clock for a run): rows a full pass returns are
    /// stamped with it, so the rest can be marked missing.
    started_at: DateTime<Utc>,
    /// Partner Center's clock at the first page, if it sent one.
    server_date: Option<DateTime<Utc>>,
    /// This machine's clock just before the first request, the watermark without one.
    local_start: DateTime<Utc>,
    filter_refused: bool,
}

/// Counts and sample ids as the batches add up.
#[derive(Default)]
struct Totals {
    counts: Counts,
    sample_inserted: Vec<String>,
    sample_updated: Vec<String>,
    sample_missing: Vec<String>,
}

impl SyncEngine {
    pub fn new(
        config: Arc<Config>,
        pool: PgPool,
        tokens: TokenProvider,
        metrics: Metrics,
    ) -> Result<Self, SyncError> {
        let http = crate::outbound::http_client(&config).map_err(SyncError::Http)?;
        let client = PartnerCenterClient::new(&config, http, tokens, metrics.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                pool,
                client,
                metrics,
            }),
        })
    }

    /// Takes the sync lock (else [`SyncError::AnotherSyncRunning`]), closes stale
    /// `running` rows as failed, runs, and records the run. A dry run takes no lock and
    /// writes nothing, not even a run row.
    pub async fn run(
        &self,
        request: RunRequest,
        cancel: CancellationToken,
    ) -> Result<RunSummary, SyncError> {
        let m = &self.inner.metrics;
        m.last_attempt.set(unix_now());
        let clock = Instant::now();
        let trigger = request.trigger;
        // ERROR level, so the span (and its fields) is on whatever the log level lets through.
        let span = tracing::error_span!(
            "sync_run",
            run_id = tracing::field::Empty,
            trigger = trigger.as_str(),
            mode = tracing::field::Empty,
        );
        if let Some(id) = request.run_id {
            span.record("run_id", id);
        }
        let result = async {
            if request.dry_run {
                self.dry_run(&request, &cancel).await
            } else {
                self.locked_run(&request, &cancel).await
            }
        }
        .instrument(span)
        .await;
        let status = match &result {
            Ok(s) => s.status.as_str(),
            Err(SyncError::AnotherSyncRunning) => "skipped",
            Err(SyncError::Cancelled) => "cancelled",
            Err(_) => "failed",
        };
        m.run_finished(trigger.as_str(), status);
        m.run_duration.observe(clock.elapsed().as_secs_f64());
        if matches!(&result, Ok(s) if s.status == RunStatus::Succeeded && !s.dry_run) {
            m.last_success.set(unix_now());
        }
        result
    }

    async fn locked_run(
        &self,
        request: &RunRequest,
        cancel: &CancellationToken,
    ) -> Result<RunSummary, SyncError> {
        let pool = &self.inner.pool;
        let Some(lock) = lock::try_acquire(pool).await? else {
            if let Some(id) = request.run_id {
                let mut conn = pool.acquire().await.map_err(StoreError::from)?;
                runs::finish(
                    &mut conn,
                    id,
                    RunStatus::Skipped,
                    Some("Another sync was running; this trigger was skipped."),
                )
                .await?;
            }
            tracing::info!(
                event = "sync_skipped",
                "Another sync is running; not starting a second one."
            );
            return Err(SyncError::AnotherSyncRunning);
        };
        let result = self.run_holding_lock(request, cancel).await;
        if let Err(e) = lock.release().await {
            tracing::warn!(event = "sync_lock_release_failed", error = %e, "Could not release the sync lock explicitly; it is released when the connection closes.");
        }
        result
    }

    async fn run_holding_lock(
        &self,
        request: &RunRequest,
        cancel: &CancellationToken,
    ) -> Result<RunSummary, SyncError> {
        let pool = &self.inner.pool;
        // Outbox rows held by runs that ended without releasing them (a crash, a failed
        // commit): under the lock, no run is writing, so all of them are released now.
        {
            let mut conn = pool.acquire().await.map_err(StoreError::from)?;
            store::notifications::release(&mut conn, None, self.inner.config.notify_digest_over)
                .await?;
        }
        for stale in runs::close_stale(pool, request.run_id).await? {
            tracing::warn!(
                event = "stale_run_closed",
                run_id = stale.id,
                host = stale.host.as_deref().unwrap_or("unknown"),
                pid = stale.pid.unwrap_or_default(),
                "Closed a run left `running` by a process that stopped; marked it failed."
            );
        }
        let run_id = match request.run_id {
            Some(id) => id,
            None => {
                let id = runs::create_queued(pool, request.trigger, request.mode, false).await?;
                tracing::Span::current().record("run_id", id);
                id
            }
        };
        let Some(started_at) = runs::start(pool, run_id).await? else {
            return Err(SyncError::RunNotQueued { run_id });
        };
        let clock = Instant::now();
        match self.execute(run_id, started_at, request, cancel).await {
            Ok(summary) => {
                let c = &summary.counts;
                tracing::info!(
                    event = "sync_finished",
                    pages = c.pages,
                    fetched = c.fetched,
                    inserted = c.inserted,
                    updated = c.updated,
                    unchanged = c.unchanged,
                    marked_missing = c.marked_missing,
                    parse_errors = c.parse_errors,
                    retries = summary.retries,
                    duration_ms = elapsed_ms(clock),
                    write_ms = (summary.write_secs * 1000.0) as u64,
                    "Sync finished: {} fetched, {} new, {} updated, {} errors in {:.1} s.",
                    c.fetched,
                    c.inserted,
                    c.updated,
                    c.parse_errors,
                    clock.elapsed().as_secs_f64()
                );
                Ok(summary)
            }
            Err(e) => {
                let status = if matches!(e, SyncError::Cancelled) {
                    RunStatus::Cancelled
                } else {
                    RunStatus::Failed
                };
                let message = e.to_string();
                let mut conn = pool.acquire().await.map_err(StoreError::from)?;
                runs::finish(&mut conn, run_id, status, Some(&message)).await?;
                // What the committed batches enqueued is delivered, not lost with the run.
                store::notifications::release(
                    &mut conn,
                    Some(run_id),
                    self.inner.config.notify_digest_over,
                )
                .await?;
                match &e {
                    SyncError::Cancelled => {
                        // Shutdown asked for it: nothing failed, no operator has to act.
                        tracing::info!(event = "sync_cancelled", status = "cancelled", reason = %message, "Sync cancelled: {message}")
                    }
                    _ => {
                        tracing::error!(event = "sync_failed", status = "failed", error = %message, "Sync failed: {message}")
                    }
                }
                Err(e)
            }
        }
    }

    async fn execute(
        &self,
        run_id: i64,
        started_at: DateTime<Utc>,
        request: &RunRequest,
        cancel: &CancellationToken,
    ) -> Result<RunSummary, SyncError> {
        let notify = Enqueuer::for_run(&self.inner.pool, &self.inner.config, run_id).await?;
        let mut writer = Writer {
            pool: &self.inner.pool,
            metrics: &self.inner.metrics,
            run_id,
            notify,
            next_state: None,
            writing: Duration::ZERO,
        };
        let summary = self
            .pass(request, Some(run_id), started_at, cancel, &mut writer)
            .await?;
        Ok(RunSummary {
            run_id: Some(run_id),
            write_secs: writer.writing.as_secs_f64(),
            watermark: writer.next_state.and_then(|s| s.watermark),
            ..summary
        })
    }

    /// `--dry-run`: the same fetch, read-only comparisons, nothing written.
    async fn dry_run(
        &self,
        request: &RunRequest,
        cancel: &CancellationToken,
    ) -> Result<RunSummary, SyncError> {
        let mut sink = DryRun::new(&self.inner.pool);
        let summary = self
            .pass(request, None, Utc::now(), cancel, &mut sink)
            .await?;
        let summary = RunSummary {
            dry_run: true,
            message: Some("Dry run: nothing was written.".into()),
            ..summary
        };
        tracing::info!(
            event = "sync_finished",
            dry_run = true,
            fetched = summary.counts.fetched,
            would_insert = summary.counts.inserted,
            would_update = summary.counts.updated,
            would_mark_missing = summary.counts.marked_missing,
            "Dry run finished; nothing was written."
        );
        Ok(summary)
    }

    /// The skeleton of every pass: plan from the stored cursor, open the listing (falling
    /// back to full if the filter is refused), hand each batch to `sink`, and sum up.
    async fn pass(
        &self,
        request: &RunRequest,
        run_id: Option<i64>,
        started_at: DateTime<Utc>,
        cancel: &CancellationToken,
        sink: &mut impl Sink,
    ) -> Result<RunSummary, SyncError> {
        let inner = &self.inner;
        let config = &inner.config;
        let deadline = tokio::time::Instant::now() + config.run_deadline;
        let stored = store::state::load(&inner.pool).await?;
        let policy = Policy::from_config(config);
        let mut plan = Plan::decide(request.mode, request.since, &stored, started_at, &policy);
        let span = tracing::Span::current();
        span.record("mode", plan.mode.as_str());
        sink.planned(&plan).await?;
        let local_start = Utc::now();
        let budget = RetryBudget::new(config.retry_budget);
        let source = Source {
            client: &inner.client,
            page_size: config.page_size,
            budget: &budget,
            cancel,
            deadline,
            run_deadline: config.run_deadline,
        };
        let opened = source.open(&mut plan).await?;
        if opened.filter_refused {
            span.record("mode", plan.mode.as_str());
        }
        let pass = Pass {
            plan,
            stored: &stored,
            started_at,
            server_date: opened.first.server_date,
            local_start,
            filter_refused: opened.filter_refused,
        };
        sink.opened(&pass).await?;
        let mut totals = Totals::default();
        let clock = Instant::now();
        let mut pump = source.pump(opened, inner.metrics.clone());
        while let Some((flat, is_last)) = pump.next_batch().await? {
            sink.batch(&pass, flat, is_last, &mut totals).await?;
            if let Some(p) = &request.progress {
                p.send_replace(totals.progress(run_id, pass.plan.mode, clock));
            }
        }
        let repaired = pump.finish().await;
        sink.finished(&pass, &mut totals).await?;
        Ok(totals.into_summary(
            request.trigger,
            pass.plan.mode,
            started_at,
            clock,
            budget.used(),
            repaired,
        ))
    }
}

impl Totals {
    /// A succeeded pass's summary; the caller sets what differs between a run and a dry
    /// run (run id, write time, watermark, message).
    fn into_summary(
        self,
        trigger: Trigger,
        mode: Mode,
        started_at: DateTime<Utc>,
        clock: Instant,
        retries: u32,
        next_links_repaired: u32,
    ) -> RunSummary {
        RunSummary {
            run_id: None,
            trigger,
            mode: Some(mode),
            status: RunStatus::Succeeded,
            dry_run: false,
            started_at,
            finished_at: Utc::now(),
            duration_secs: clock.elapsed().as_secs_f64(),
            write_secs: 0.0,
            counts: self.counts,
            retries,
            next_links_repaired,
            watermark: None,
            message: None,
            sample_inserted: self.sample_inserted,
            sample_updated: self.sample_updated,
            sample_missing: self.sample_missing,
        }
    }

    fn progress(&self, run_id: Option<i64>, mode: Mode, clock: Instant) -> Progress {
        Progress {
            run_id,
            mode: Some(mode),
            counts: self.counts,
            elapsed_secs: clock.elapsed().as_secs_f64(),
        }
    }
}

fn elapsed_ms(clock: Instant) -> u64 {
    u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn unix_now() -> f64 {
    let now = Utc::now();
    now.timestamp() as f64 + f64::from(now.timestamp_subsec_millis()) / 1000.0
}
