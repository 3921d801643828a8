//! `--dry-run`: the same fetch as a run, compared with the table instead of written to it.
//! It takes no lock and writes nothing, not even a run row.

use std::collections::HashSet;

use super::pipeline::{Flat, SAMPLE_IDS};
use super::plan::Plan;
use super::{Pass, Sink, SyncError, Totals};
use crate::store::referrals::{self, ReferralRow, WouldBe};
use crate::store::runs::{Counts, Mode};

pub(super) struct DryRun<'a> {
    pub pool: &'a sqlx::PgPool,
    /// Ids the pass returned: each is compared once, and a full pass's would-be-missing
    /// are the stored ids not among them.
    seen: HashSet<String>,
}

impl<'a> DryRun<'a> {
    pub(crate) fn new(pool: &'a sqlx::PgPool) -> Self {
        Self {
            pool,
            seen: HashSet::new(),
        }
    }
}

impl Sink for DryRun<'_> {
    async fn planned(&mut self, plan: &Plan) -> Result<(), SyncError> {
        tracing::info!(
            event = "sync_started",
            dry_run = true,
            reason = plan.reason,
            "Dry run started; nothing will be written."
        );
        Ok(())
    }

    async fn opened(&mut self, _: &Pass<'_>) -> Result<(), SyncError> {
        Ok(())
    }

    async fn batch(
        &mut self,
        _: &Pass<'_>,
        flat: Flat,
        _: bool,
        totals: &mut Totals,
    ) -> Result<(), SyncError> {
        let mut delta = flat.counts();
        let fresh: Vec<ReferralRow> = flat
            .rows
            .into_iter()
            .filter(|r| self.seen.insert(r.id.clone()))
            .collect();
        for (id, would) in referrals::classify(self.pool, &fresh).await? {
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
        totals.counts.add(&delta);
        Ok(())
    }

    async fn finished(&mut self, pass: &Pass<'_>, totals: &mut Totals) -> Result<(), SyncError> {
        if pass.plan.mode == Mode::Full {
            let seen: Vec<String> = self.seen.drain().collect();
            let (count, sample) =
                referrals::would_be_missing(self.pool, &seen, SAMPLE_IDS as i64).await?;
            totals.counts.add(&Counts {
                marked_missing: count,
                ..Counts::default()
            });
            totals.sample_missing = sample;
        }
        Ok(())
    }
}
