//! One sync run: fetch pages, upsert rows, advance the watermark with the last page.
//!
//! A run is two tasks joined by a small bounded channel: the fetcher pulls pages (one at
//! a time, following `@odata.nextLink`) and extracts typed columns; the writer commits
//! whatever pages have arrived in one transaction, together with the run's counters. So
//! fetching and writing overlap, memory stays flat whatever the dataset size, and a kill
//! at any moment leaves only whole batches behind. The watermark, the missing marks of a
//! full pass and the run's final status commit in the transaction of the last page.

pub mod domain;
pub mod extract;
mod summary;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::auth::{AuthError, TokenProvider};
use crate::config::{Config, ConfigError};
use crate::metrics::Metrics;
use crate::partner_center::{
    ListQuery, Page, PartnerCenterClient, PcError, ReferralPages, RetryBudget,
};
use crate::store::referrals::{self, ReferralRow, WouldBe};
use crate::store::state::SyncState;
use crate::store::{self, StoreError, companies, lock, runs};

pub use crate::store::runs::{Mode, RequestedMode, RunStatus, Trigger};
pub use summary::{CliOptions, Progress, RunSummary, run_cli};

/// Pages the writer may commit in one transaction when it has fallen behind.
const MAX_BATCH_PAGES: usize = 10;
/// Pages fetched ahead of the writer; bounds memory.
const CHANNEL_PAGES: usize = 8;
/// Sample ids a dry run reports per outcome.
const SAMPLE_IDS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(
        "Another sync is running (another process holds the sync lock); this one was not started. Try again when it has finished."
    )]
    AnotherSyncRunning,
    #[error("Sign-in required: {reason}. Run `partner-center-sync login`.")]
    SignInRequired { reason: String },
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
    /// The CLI's exit code: 75 (EX_TEMPFAIL) when another sync runs, 77 (EX_NOPERM)
    /// when a sign-in is required, 78 (EX_CONFIG) for a sign-in setting or token cache
    /// the operator must fix, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            SyncError::AnotherSyncRunning => 75,
            SyncError::SignInRequired { .. } => 77,
            SyncError::Auth(e) | SyncError::Api(PcError::Auth(e)) if e.exit_code() == 78 => 78,
            _ => 1,
        }
    }
}

impl From<PcError> for SyncError {
    fn from(e: PcError) -> Self {
        match e {
            PcError::SignInRequired { reason } => SyncError::SignInRequired { reason },
            PcError::Auth(AuthError::SignInRequired { reason }) => {
                SyncError::SignInRequired { reason }
            }
            other => SyncError::Api(other),
        }
    }
}

impl From<AuthError> for SyncError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::SignInRequired { reason } => SyncError::SignInRequired { reason },
            other => SyncError::Auth(other),
        }
    }
}

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

/// The plan of one run, decided from the request and the stored cursor.
#[derive(Clone, Debug)]
struct Plan {
    mode: Mode,
    since: Option<DateTime<Utc>>,
    reason: &'static str,
    /// Whether completing the run moves the watermark (a `--since` later than the stored
    /// window must not, or the gap between them would never be read).
    advances_watermark: bool,
}

/// Pages and counters as the writer sees them.
struct Fetched {
    rows: Vec<extract::Extracted>,
    unusable: Vec<extract::Unusable>,
    items: u64,
    is_last: bool,
}

#[derive(Default)]
struct Totals {
    pages: u64,
    fetched: u64,
    inserted: u64,
    updated: u64,
    unchanged: u64,
    marked_missing: u64,
    parse_errors: u64,
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
        let result = if request.dry_run {
            self.dry_run(&request, &cancel).await
        } else {
            self.locked_run(&request, &cancel).await
        };
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
                trigger = request.trigger.as_str(),
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
            None => runs::create_queued(pool, request.trigger, request.mode, false).await?,
        };
        let Some(started_at) = runs::start(pool, run_id).await? else {
            return Err(SyncError::RunNotQueued { run_id });
        };
        let clock = Instant::now();
        let result = self.execute(run_id, started_at, request, cancel).await;
        match result {
            Ok(summary) => {
                tracing::info!(
                    event = "sync_finished",
                    run_id,
                    trigger = request.trigger.as_str(),
                    mode = summary.mode.map(Mode::as_str).unwrap_or("unknown"),
                    pages = summary.pages,
                    fetched = summary.fetched,
                    inserted = summary.inserted,
                    updated = summary.updated,
                    unchanged = summary.unchanged,
                    marked_missing = summary.marked_missing,
                    parse_errors = summary.parse_errors,
                    retries = summary.retries,
                    duration_ms = elapsed_ms(clock),
                    write_ms = (summary.write_secs * 1000.0) as u64,
                    "Sync finished."
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
                match &e {
                    SyncError::Cancelled => {
                        // Shutdown asked for it: nothing failed, no operator has to act.
                        tracing::info!(event = "sync_cancelled", run_id, status = "cancelled", reason = %message, "Sync cancelled.")
                    }
                    _ => {
                        tracing::error!(event = "sync_failed", run_id, status = "failed", error = %message, "Sync failed.")
                    }
                }
                Err(e)
            }
        }
    }

    fn plan(&self, request: &RunRequest, state: &SyncState, now: DateTime<Utc>) -> Plan {
        let config = &self.inner.config;
        let overlap = chrono::Duration::from_std(config.incremental_overlap).unwrap_or_default();
        let reconcile = chrono::Duration::from_std(config.full_reconcile_every)
            .unwrap_or(chrono::Duration::MAX);
        let full = |reason| Plan {
            mode: Mode::Full,
            since: None,
            reason,
            advances_watermark: true,
        };
        if request.mode == RequestedMode::Full {
            return full("requested");
        }
        if !state.incremental_filter_supported {
            return full("Partner Center refused the updatedDateTime filter earlier");
        }
        if let Some(since) = request.since {
            let covers = state.watermark.is_some_and(|w| since <= w - overlap);
            return Plan {
                mode: Mode::Incremental,
                since: Some(since),
                reason: "--since",
                advances_watermark: covers,
            };
        }
        let Some(watermark) = state.watermark else {
            return full("first run");
        };
        if state.last_full_at.is_none_or(|at| now - at >= reconcile) {
            return full("periodic full reconciliation is due");
        }
        Plan {
            mode: Mode::Incremental,
            since: Some(watermark - overlap),
            reason: "scheduled",
            advances_watermark: true,
        }
    }

    fn query(&self, plan: &Plan) -> ListQuery {
        ListQuery {
            updated_since: plan.since,
            top: self.inner.config.page_size,
        }
    }

    /// Fetches the first page, falling back to a full pass if the API refuses the
    /// incremental filter (a 400 on the filtered list). The bool: the filter was refused.
    async fn open(
        &self,
        plan: &mut Plan,
        budget: &RetryBudget,
        cancel: &CancellationToken,
        deadline: tokio::time::Instant,
    ) -> Result<(ReferralPages, Page, bool), SyncError> {
        match self.first_page(plan, budget, cancel, deadline).await? {
            Ok((pages, first)) => Ok((pages, first, false)),
            Err(e) if plan.mode == Mode::Incremental && e.is_bad_request() => {
                tracing::warn!(
                    event = "incremental_filter_refused",
                    error = %e,
                    "Partner Center refused the updatedDateTime filter; running a full pass instead and not trying incremental runs again."
                );
                *plan = Plan {
                    mode: Mode::Full,
                    since: None,
                    reason: "Partner Center refused the updatedDateTime filter",
                    advances_watermark: true,
                };
                let (pages, first) = self.first_page(plan, budget, cancel, deadline).await??;
                Ok((pages, first, true))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The listing `plan` asks for and its first page; the inner error is the API's answer.
    async fn first_page(
        &self,
        plan: &Plan,
        budget: &RetryBudget,
        cancel: &CancellationToken,
        deadline: tokio::time::Instant,
    ) -> Result<Result<(ReferralPages, Page), PcError>, SyncError> {
        let mut pages = self.inner.client.list(&self.query(plan), budget.clone());
        let first = guarded(
            cancel,
            deadline,
            self.inner.config.run_deadline,
            pages.next_page(),
        )
        .await?;
        Ok(match first {
            Ok(Some(first)) => Ok((pages, first)),
            Ok(None) => Err(PcError::BadNextLink {
                link: "(no first page)".into(),
            }),
            Err(e) => Err(e),
        })
    }

    async fn execute(
        &self,
        run_id: i64,
        started_at: DateTime<Utc>,
        request: &RunRequest,
        cancel: &CancellationToken,
    ) -> Result<RunSummary, SyncError> {
        let inner = &self.inner;
        let pool = &inner.pool;
        let deadline = tokio::time::Instant::now() + inner.config.run_deadline;
        let state = store::state::load(pool).await?;
        let mut plan = self.plan(request, &state, started_at);
        runs::set_mode(pool, run_id, plan.mode).await?;
        tracing::info!(
            event = "sync_started",
            run_id,
            trigger = request.trigger.as_str(),
            mode = plan.mode.as_str(),
            reason = plan.reason,
            since = ?plan.since,
            "Sync started."
        );
        let local_start = Utc::now();
        let budget = RetryBudget::new(inner.config.retry_budget);
        let (pages, first, filter_refused) =
            self.open(&mut plan, &budget, cancel, deadline).await?;
        if filter_refused {
            runs::set_mode(pool, run_id, plan.mode).await?;
        }
        let watermark = first.server_date.unwrap_or_else(|| {
            tracing::warn!(
                event = "server_date_missing",
                "Partner Center sent no Date header; using this machine's clock for the watermark."
            );
            local_start
        });
        let new_state = SyncState {
            watermark: if plan.advances_watermark {
                Some(watermark)
            } else {
                state.watermark
            },
            last_full_at: if plan.mode == Mode::Full {
                Some(watermark)
            } else {
                state.last_full_at
            },
            incremental_filter_supported: !filter_refused
                && (plan.mode == Mode::Incremental || state.incremental_filter_supported),
        };
        let full = plan.mode == Mode::Full;
        let mut totals = Totals::default();
        let clock = Instant::now();
        let mut pump = self.pump(pages, first, cancel, deadline);
        let mut writing = Duration::ZERO;
        while let Some((batch, is_last)) = pump.next_batch().await? {
            let write_clock = Instant::now();
            let mut tx = pool.begin().await.map_err(StoreError::from)?;
            store::state::relax_durability(&mut tx).await?;
            let flat = flatten(batch);
            let outcome = referrals::upsert(&mut tx, &flat.rows, started_at, full).await?;
            referrals::record_errors(&mut tx, run_id, &flat.errors).await?;
            companies::apply(&mut tx, &flat.rows, &outcome.changes).await?;
            let mut delta = runs::Progress {
                pages: to_i64(flat.pages),
                fetched: to_i64(flat.items),
                inserted: to_i64(outcome.inserted),
                updated: to_i64(outcome.updated),
                unchanged: to_i64(outcome.unchanged + flat.duplicates),
                marked_missing: 0,
                parse_errors: to_i64(flat.errors.len() as u64),
            };
            if is_last {
                if full {
                    let marked = referrals::mark_missing(&mut tx, started_at).await?;
                    companies::rebuild(&mut tx).await?;
                    delta.marked_missing = to_i64(marked.count);
                    totals.sample_missing = marked.ids.into_iter().take(SAMPLE_IDS).collect();
                }
                store::state::save(&mut tx, &new_state).await?;
            }
            runs::add_progress(&mut tx, run_id, &delta).await?;
            if is_last {
                runs::finish(&mut tx, run_id, RunStatus::Succeeded, None).await?;
            }
            tx.commit().await.map_err(StoreError::from)?;
            writing += write_clock.elapsed();
            let m = &inner.metrics;
            m.upserted("inserted", outcome.inserted);
            m.upserted("updated", outcome.updated);
            m.upserted("unchanged", outcome.unchanged + flat.duplicates);
            if delta.marked_missing > 0 {
                m.upserted(
                    "marked_missing",
                    u64::try_from(delta.marked_missing).unwrap_or(0),
                );
            }
            totals.add(&delta);
            tracing::debug!(
                event = "page_committed",
                run_id,
                pages = delta.pages,
                fetched = delta.fetched,
                inserted = delta.inserted,
                updated = delta.updated,
                "Committed a batch of pages."
            );
            if let Some(p) = &request.progress {
                p.send_replace(totals.progress(Some(run_id), plan.mode, clock));
            }
        }
        let repaired = pump.finish().await;
        Ok(RunSummary {
            run_id: Some(run_id),
            write_secs: writing.as_secs_f64(),
            watermark: new_state.watermark,
            ..totals.into_summary(
                request.trigger,
                plan.mode,
                started_at,
                clock,
                budget.used(),
                repaired,
            )
        })
    }

    /// `--dry-run`: the same fetch, read-only comparisons, nothing written.
    async fn dry_run(
        &self,
        request: &RunRequest,
        cancel: &CancellationToken,
    ) -> Result<RunSummary, SyncError> {
        let inner = &self.inner;
        let pool = &inner.pool;
        let deadline = tokio::time::Instant::now() + inner.config.run_deadline;
        let started_at = Utc::now();
        let state = store::state::load(pool).await?;
        let mut plan = self.plan(request, &state, started_at);
        tracing::info!(
            event = "sync_started",
            dry_run = true,
            mode = plan.mode.as_str(),
            reason = plan.reason,
            "Dry run started; nothing will be written."
        );
        let budget = RetryBudget::new(inner.config.retry_budget);
        let (pages, first, _) = self.open(&mut plan, &budget, cancel, deadline).await?;
        let full = plan.mode == Mode::Full;
        let mut totals = Totals::default();
        let mut seen: HashSet<String> = HashSet::new();
        let clock = Instant::now();
        let mut pump = self.pump(pages, first, cancel, deadline);
        while let Some((batch, _)) = pump.next_batch().await? {
            let flat = flatten(batch);
            let fresh: Vec<ReferralRow> = flat
                .rows
                .into_iter()
                .filter(|r| seen.insert(r.id.clone()))
                .collect();
            let mut delta = runs::Progress {
                pages: to_i64(flat.pages),
                fetched: to_i64(flat.items),
                unchanged: to_i64(flat.duplicates),
                parse_errors: to_i64(flat.errors.len() as u64),
                ..runs::Progress::default()
            };
            for (id, would) in referrals::classify(pool, &fresh).await? {
                let (count, sample) = match would {
                    WouldBe::Inserted => (&mut delta.inserted, Some(&mut totals.sample_inserted)),
                    WouldBe::Updated => (&mut delta.updated, Some(&mut totals.sample_updated)),
                    WouldBe::Unchanged => (&mut delta.unchanged, None),
                };
                *count += 1;
                if let Some(sample) = sample.filter(|s| s.len() < SAMPLE_IDS) {
                    sample.push(id);
                }
            }
            totals.add(&delta);
            if let Some(p) = &request.progress {
                p.send_replace(totals.progress(None, plan.mode, clock));
            }
        }
        let repaired = pump.finish().await;
        if full {
            let seen: Vec<String> = seen.into_iter().collect();
            let (count, sample) =
                referrals::would_be_missing(pool, &seen, SAMPLE_IDS as i64).await?;
            totals.marked_missing = count;
            totals.sample_missing = sample;
        }
        let summary = RunSummary {
            dry_run: true,
            message: Some("Dry run: nothing was written.".into()),
            ..totals.into_summary(
                request.trigger,
                plan.mode,
                started_at,
                clock,
                budget.used(),
                repaired,
            )
        };
        tracing::info!(
            event = "sync_finished",
            dry_run = true,
            fetched = summary.fetched,
            would_insert = summary.inserted,
            would_update = summary.updated,
            would_mark_missing = summary.marked_missing,
            "Dry run finished; nothing was written."
        );
        Ok(summary)
    }

    /// Starts the fetcher; the caller pulls batches with [`Pump::next_batch`].
    fn pump(
        &self,
        pages: ReferralPages,
        first: Page,
        cancel: &CancellationToken,
        deadline: tokio::time::Instant,
    ) -> Pump {
        let (tx, rx) = mpsc::channel::<Result<Fetched, PcError>>(CHANNEL_PAGES);
        let fetcher = tokio::spawn(fetch_pages(pages, first, tx, self.inner.metrics.clone()));
        Pump {
            rx,
            abort: AbortOnDrop(fetcher.abort_handle()),
            fetcher,
            cancel: cancel.clone(),
            deadline,
            run_deadline: self.inner.config.run_deadline,
            pending: None,
            done: false,
        }
    }
}

/// The writer's side of a run: batches of the pages that have arrived, one transaction
/// each. Cancellation and the deadline are checked between batches, never inside one.
struct Pump {
    rx: mpsc::Receiver<Result<Fetched, PcError>>,
    fetcher: tokio::task::JoinHandle<u32>,
    abort: AbortOnDrop,
    cancel: CancellationToken,
    deadline: tokio::time::Instant,
    run_deadline: Duration,
    /// A fetch error that arrived behind good pages: those are written first.
    pending: Option<PcError>,
    done: bool,
}

impl Pump {
    /// The next batch and whether it ends the pass; `None` after the last.
    async fn next_batch(&mut self) -> Result<Option<(Vec<Fetched>, bool)>, SyncError> {
        if let Some(e) = self.pending.take() {
            return Err(e.into());
        }
        if self.done {
            return Ok(None);
        }
        let next = tokio::select! {
            biased;
            () = self.cancel.cancelled() => return Err(SyncError::Cancelled),
            () = tokio::time::sleep_until(self.deadline) => return Err(SyncError::DeadlineExceeded { deadline: self.run_deadline }),
            next = self.rx.recv() => next,
        };
        let Some(first) = next else {
            return Err(SyncError::Api(PcError::BadNextLink {
                link: "(paging stopped before the last page)".into(),
            }));
        };
        let mut batch = vec![first?];
        while batch.len() < MAX_BATCH_PAGES && !batch.last().is_some_and(|b| b.is_last) {
            match self.rx.try_recv() {
                Ok(Ok(page)) => batch.push(page),
                Ok(Err(e)) => {
                    self.pending = Some(e);
                    break;
                }
                Err(_) => break,
            }
        }
        let is_last = batch.last().is_some_and(|b| b.is_last);
        self.done = is_last;
        Ok(Some((batch, is_last)))
    }

    /// How many nextLinks the pass repaired.
    async fn finish(self) -> u32 {
        let Pump { fetcher, abort, .. } = self;
        let repaired = fetcher.await.unwrap_or(0);
        drop(abort);
        repaired
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The fetch half of a run: pulls pages in order and extracts typed columns, so that
/// CPU work overlaps the writer's database round trips.
async fn fetch_pages(
    mut pages: ReferralPages,
    first: Page,
    tx: mpsc::Sender<Result<Fetched, PcError>>,
    metrics: Metrics,
) -> u32 {
    let mut page = first;
    loop {
        let is_last = page.is_last;
        metrics.referrals_fetched.inc_by(page.items.len() as u64);
        if tx.send(Ok(prepare(page))).await.is_err() || is_last {
            return pages.repaired_links();
        }
        page = match pages.next_page().await {
            Ok(Some(p)) => p,
            Ok(None) => return pages.repaired_links(),
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return pages.repaired_links();
            }
        };
    }
}

fn prepare(page: Page) -> Fetched {
    let items = page.items.len() as u64;
    let mut rows = Vec::with_capacity(page.items.len());
    let mut unusable = Vec::new();
    for raw in page.items {
        match extract::extract(raw) {
            Ok(e) => rows.push(e),
            Err(u) => unusable.push(u),
        }
    }
    Fetched {
        rows,
        unusable,
        items,
        is_last: page.is_last,
    }
}

/// One batch ready for the database.
struct Flat {
    /// Each id once, the newest `updatedDateTime` kept (the later copy on a tie).
    rows: Vec<ReferralRow>,
    pages: u64,
    items: u64,
    /// Copies of an id already in the batch, counted as unchanged.
    duplicates: u64,
    /// `sync_errors` entries: referral id (if any) and reason.
    errors: Vec<(Option<String>, String)>,
}

fn flatten(batch: Vec<Fetched>) -> Flat {
    let mut flat = Flat {
        rows: Vec::new(),
        pages: batch.len() as u64,
        items: 0,
        duplicates: 0,
        errors: Vec::new(),
    };
    let mut index: HashMap<String, usize> = HashMap::new();
    for page in batch {
        flat.items += page.items;
        for u in page.unusable {
            flat.errors
                .push((u.id, format!("Referral skipped: {}", u.reason)));
        }
        for e in page.rows {
            if !e.problems.is_empty() {
                flat.errors.push((
                    Some(e.row.id.clone()),
                    format!("Stored with some columns empty: {}", e.problems.join("; ")),
                ));
            }
            match index.get(&e.row.id) {
                Some(&i) => {
                    flat.duplicates += 1;
                    if e.row.updated_at >= flat.rows[i].updated_at {
                        flat.rows[i] = e.row;
                    }
                }
                None => {
                    index.insert(e.row.id.clone(), flat.rows.len());
                    flat.rows.push(e.row);
                }
            }
        }
    }
    flat
}

/// Races a fetch against cancellation and the run deadline.
async fn guarded<T>(
    cancel: &CancellationToken,
    deadline: tokio::time::Instant,
    run_deadline: Duration,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, SyncError> {
    tokio::select! {
        biased;
        () = cancel.cancelled() => Err(SyncError::Cancelled),
        () = tokio::time::sleep_until(deadline) => Err(SyncError::DeadlineExceeded { deadline: run_deadline }),
        out = fut => Ok(out),
    }
}

impl Totals {
    fn add(&mut self, d: &runs::Progress) {
        let u = |n: i64| u64::try_from(n).unwrap_or(0);
        self.pages += u(d.pages);
        self.fetched += u(d.fetched);
        self.inserted += u(d.inserted);
        self.updated += u(d.updated);
        self.unchanged += u(d.unchanged);
        self.marked_missing += u(d.marked_missing);
        self.parse_errors += u(d.parse_errors);
    }

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
            pages: self.pages,
            fetched: self.fetched,
            inserted: self.inserted,
            updated: self.updated,
            unchanged: self.unchanged,
            marked_missing: self.marked_missing,
            parse_errors: self.parse_errors,
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
            pages: self.pages,
            fetched: self.fetched,
            inserted: self.inserted,
            updated: self.updated,
            unchanged: self.unchanged,
            elapsed_secs: clock.elapsed().as_secs_f64(),
        }
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn elapsed_ms(clock: Instant) -> u64 {
    u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn unix_now() -> f64 {
    let now = Utc::now();
    now.timestamp() as f64 + f64::from(now.timestamp_subsec_millis()) / 1000.0
}
