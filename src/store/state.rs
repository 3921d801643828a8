//! The sync cursor: a single row, written in the same transaction as a run's last page.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use super::StoreError;

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub(crate) struct SyncState {
    /// Server time at which the last completed run started.
    pub watermark: Option<DateTime<Utc>>,
    pub last_full_at: Option<DateTime<Utc>>,
    pub incremental_filter_supported: bool,
}

impl Default for SyncState {
    fn default() -> Self {
        Self {
            watermark: None,
            last_full_at: None,
            incremental_filter_supported: true,
        }
    }
}

/// The stored cursor, or the state of a database that never completed a run.
pub(crate) async fn load(pool: &PgPool) -> Result<SyncState, StoreError> {
    let row = sqlx::query_as!(
        SyncState,
        "SELECT watermark, last_full_at, incremental_filter_supported
         FROM partner_center_sync_state WHERE id = 1",
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.unwrap_or_default())
}

/// A sync transaction need not wait for its WAL flush: everything it writes is re-read
/// idempotently by the next run (the watermark only moves with the last page), so losing
/// the last few commits to a PostgreSQL crash costs a re-read, never consistency, while a
/// flush per page would dominate the run time on slow disks.
pub(crate) async fn relax_durability(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query!("SET LOCAL synchronous_commit = off")
        .execute(conn)
        .await?;
    Ok(())
}

/// Written inside the transaction of the run's last page.
pub(crate) async fn save(conn: &mut PgConnection, state: &SyncState) -> Result<(), StoreError> {
    sqlx::query!(
        "INSERT INTO partner_center_sync_state (id, watermark, last_full_at, incremental_filter_supported, updated_at)
         VALUES (1, $1, $2, $3, now())
         ON CONFLICT (id) DO UPDATE SET watermark = excluded.watermark, last_full_at = excluded.last_full_at,
             incremental_filter_supported = excluded.incremental_filter_supported, updated_at = now()",
        state.watermark,
        state.last_full_at,
        state.incremental_filter_supported,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// After an older integration's table was adopted, nothing recorded here says what the new
/// `partner_center_referrals` holds: without a watermark the next run is full.
pub(crate) async fn forget_cursor(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::query!(
        "INSERT INTO partner_center_sync_state (id, watermark, last_full_at, updated_at)
         VALUES (1, NULL, NULL, now())
         ON CONFLICT (id) DO UPDATE SET watermark = NULL, last_full_at = NULL, updated_at = now()",
    )
    .execute(pool)
    .await?;
    Ok(())
}
