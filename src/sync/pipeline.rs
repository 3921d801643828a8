//! Fetch -> write: the fetcher pulls pages (one at a time, following `@odata.nextLink`)
//! and extracts typed columns in its own task; the writer commits whatever pages have
//! arrived in one transaction, together with the run's counters.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::plan::Plan;
use super::{Pass, Sink, SyncError, Totals, extract};
use crate::metrics::Metrics;
use crate::notify::enqueue::Enqueuer;
use crate::partner_center::{
    ListQuery, Page, PartnerCenterClient, PcError, ReferralPages, RetryBudget,
};
use crate::store::referrals::{self, NewSyncError, ReferralRow};
use crate::store::runs::{self, Counts, Mode, RunStatus};
use crate::store::state::SyncState;
use crate::store::{self, StoreError, companies};

/// Pages the writer may commit in one transaction when it has fallen behind.
const MAX_BATCH_PAGES: usize = 10;
/// Pages fetched ahead of the writer; bounds memory.
const CHANNEL_PAGES: usize = 8;
/// Sample ids a run reports per outcome.
pub(super) const SAMPLE_IDS: usize = 5;

/// The listing a pass reads, and its first page.
pub(super) struct Opened {
    pub pages: ReferralPages,
    pub first: Page,
    /// Partner Center answered the incremental filter with a 400; `plan` is now full.
    pub filter_refused: bool,
}

/// Where the pages come from, and the limits a pass runs under.
pub(super) struct Source<'a> {
    pub client: &'a PartnerCenterClient,
    pub page_size: u32,
    pub budget: &'a RetryBudget,
    pub cancel: &'a CancellationToken,
    pub deadline: tokio::time::Instant,
    pub run_deadline: Duration,
}

impl Source<'_> {
    /// Fetches the first page, falling back to a full pass if the API refuses the
    /// incremental filter (a 400 on the filtered list).
    pub(crate) async fn open(&self, plan: &mut Plan) -> Result<Opened, SyncError> {
        match self.first_page(plan).await? {
            Ok((pages, first)) => Ok(Opened {
                pages,
                first,
                filter_refused: false,
            }),
            Err(e) if plan.mode == Mode::Incremental && e.is_bad_request() => {
                tracing::warn!(
                    event = "incremental_filter_refused",
                    error = %e,
                    "Partner Center refused the updatedDateTime filter; running a full pass instead and not trying incremental runs again."
                );
                *plan = Plan::filter_refused();
                let (pages, first) = self.first_page(plan).await??;
                Ok(Opened {
                    pages,
                    first,
                    filter_refused: true,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The listing `plan` asks for and its first page; the inner error is the API's answer.
    async fn first_page(
        &self,
        plan: &Plan,
    ) -> Result<Result<(ReferralPages, Page), PcError>, SyncError> {
        let query = ListQuery {
            updated_since: plan.since,
            top: self.page_size,
        };
        let mut pages = self.client.list(&query, self.budget.clone());
        let first = self.guarded(pages.next_page()).await?;
        Ok(match first {
            Ok(Some(first)) => Ok((pages, first)),
            Ok(None) => Err(PcError::BadNextLink {
                link: "(no first page)".into(),
            }),
            Err(e) => Err(e),
        })
    }

    /// Races a fetch against cancellation and the run deadline.
    async fn guarded<T>(&self, fut: impl Future<Output = T>) -> Result<T, SyncError> {
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => Err(SyncError::Cancelled),
            () = tokio::time::sleep_until(self.deadline) => Err(SyncError::DeadlineExceeded { deadline: self.run_deadline }),
            out = fut => Ok(out),
        }
    }

    /// Starts the fetcher; the caller pulls batches with [`Pump::next_batch`].
    pub(crate) fn pump(&self, opened: Opened, metrics: Metrics) -> Pump {
        let (tx, rx) = mpsc::channel::<Result<Fetched, PcError>>(CHANNEL_PAGES);
        let fetcher =
            tokio::spawn(fetch_pages(opened.pages, opened.first, tx, metrics).in_current_span());
        Pump {
            rx,
            abort: AbortOnDrop(fetcher.abort_handle()),
            fetcher,
            cancel: self.cancel.clone(),
            deadline: self.deadline,
            run_deadline: self.run_deadline,
            pending: None,
            done: false,
        }
    }
}

/// One page as the fetcher hands it over.
pub(super) struct Fetched {
    rows: Vec<extract::Extracted>,
    unusable: Vec<extract::Unusable>,
    items: u64,
    is_last: bool,
}

/// The writer's side of a run: batches of the pages that have arrived, one transaction
/// each. Cancellation and the deadline are checked between batches, never inside one.
pub(super) struct Pump {
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
    pub(crate) async fn next_batch(&mut self) -> Result<Option<(Flat, bool)>, SyncError> {
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
        Ok(Some((flatten(batch), is_last)))
    }

    /// How many nextLinks the pass repaired.
    pub(crate) async fn finish(self) -> u32 {
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
pub(super) struct Flat {
    /// Each id once, the newest `updatedDateTime` kept (the later copy on a tie).
    pub rows: Vec<ReferralRow>,
    pub pages: u64,
    pub items: u64,
    /// Copies of an id already in the batch, counted as unchanged.
    pub duplicates: u64,
    /// What was not stored as sent, for `partner_center_sync_errors`.
    pub errors: Vec<NewSyncError>,
}

impl Flat {
    /// The counts a batch has before it meets the database.
    pub(crate) fn counts(&self) -> Counts {
        Counts {
            pages: self.pages,
            fetched: self.items,
            unchanged: self.duplicates,
            parse_errors: self.errors.len() as u64,
            ..Counts::default()
        }
    }
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
            flat.errors.push(NewSyncError {
                referral_id: u.id,
                field: u.field,
                reason: u.reason,
            });
        }
        for e in page.rows {
            flat.errors
                .extend(e.problems.into_iter().map(|p| NewSyncError {
                    referral_id: Some(extract::shown_id(&e.row.id)),
                    field: Some(p.field),
                    reason: p.reason,
                }));
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

/// A real run's sink: each batch in one transaction with its counters; the last one also
/// marks what a full pass did not see, saves the cursor and closes the run.
pub(super) struct Writer<'a> {
    pub pool: &'a sqlx::PgPool,
    pub metrics: &'a Metrics,
    pub run_id: i64,
    /// Fills the notifications outbox in the same transactions.
    pub notify: Enqueuer,
    /// The cursor the last batch saves, known once the first page has arrived.
    pub next_state: Option<SyncState>,
    /// Time spent in transactions.
    pub writing: Duration,
}

impl Sink for Writer<'_> {
    async fn planned(&mut self, plan: &Plan) -> Result<(), SyncError> {
        runs::set_mode(self.pool, self.run_id, plan.mode).await?;
        tracing::info!(
            event = "sync_started",
            reason = plan.reason,
            since = plan.since.map(|t| t.to_rfc3339()),
            "Sync started: {}.",
            plan.describe()
        );
        Ok(())
    }

    async fn opened(&mut self, pass: &Pass<'_>) -> Result<(), SyncError> {
        if pass.filter_refused {
            runs::set_mode(self.pool, self.run_id, pass.plan.mode).await?;
        }
        let server_time = pass.server_date.unwrap_or_else(|| {
            tracing::warn!(
                event = "server_date_missing",
                "Partner Center sent no Date header; using this machine's clock for the watermark."
            );
            pass.local_start
        });
        self.next_state = Some(
            pass.plan
                .next_state(pass.stored, server_time, pass.filter_refused),
        );
        Ok(())
    }

    async fn batch(
        &mut self,
        pass: &Pass<'_>,
        flat: Flat,
        is_last: bool,
        totals: &mut Totals,
    ) -> Result<(), SyncError> {
        let full = pass.plan.mode == Mode::Full;
        let clock = Instant::now();
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        store::state::relax_durability(&mut tx).await?;
        let outcome = referrals::upsert(
            &mut tx,
            &flat.rows,
            pass.started_at,
            Some(self.run_id),
            full,
        )
        .await?;
        self.notify.batch(&mut tx, &outcome).await?;
        referrals::record_errors(&mut tx, self.run_id, &flat.errors).await?;
        companies::apply(&mut tx, &flat.rows, &outcome.changes).await?;
        let mut delta = Counts {
            inserted: outcome.inserted,
            updated: outcome.updated,
            unchanged: outcome.unchanged + flat.duplicates,
            ..flat.counts()
        };
        if is_last {
            if full {
                let marked =
                    referrals::mark_missing(&mut tx, pass.started_at, Some(self.run_id)).await?;
                self.notify.missing(&mut tx, &marked.ids).await?;
                companies::rebuild(&mut tx).await?;
                delta.marked_missing = marked.count;
                totals.sample_missing = marked.ids.into_iter().take(SAMPLE_IDS).collect();
            }
            if let Some(state) = &self.next_state {
                store::state::save(&mut tx, state).await?;
            }
            let created = totals.counts.inserted + delta.inserted;
            self.notify.finish(&mut tx, created).await?;
        }
        runs::add_progress(&mut tx, self.run_id, &delta).await?;
        if is_last {
            runs::finish(&mut tx, self.run_id, RunStatus::Succeeded, None).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        self.writing += clock.elapsed();
        let m = self.metrics;
        m.upserted("inserted", delta.inserted);
        m.upserted("updated", delta.updated);
        m.upserted("unchanged", delta.unchanged);
        if delta.marked_missing > 0 {
            m.upserted("marked_missing", delta.marked_missing);
        }
        totals.counts.add(&delta);
        tracing::debug!(
            event = "page_committed",
            pages = delta.pages,
            fetched = delta.fetched,
            inserted = delta.inserted,
            updated = delta.updated,
            "Committed {} pages: {} fetched, {} new, {} updated.",
            delta.pages,
            delta.fetched,
            delta.inserted,
            delta.updated
        );
        Ok(())
    }

    async fn finished(&mut self, _: &Pass<'_>, _: &mut Totals) -> Result<(), SyncError> {
        Ok(())
    }
}
