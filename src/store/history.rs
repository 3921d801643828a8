//! The change history (`partner_center_referral_changes`): how each referral moved.
//!
//! The tracked fields are listed once, in SQL (`partner_center_referral_tracked_names()` and
//! `partner_center_referral_tracked_values()` in `migrations/0005_history_notifications.sql`), so the
//! update that observes a change compares old and new rows inside PostgreSQL and only
//! the changed fields ever leave the server. This file writes the rows the upsert cannot
//! compute in that statement (`created`, `returned`) and reads the history back.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use super::StoreError;
use super::referrals::ReferralRow;

/// One history row as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ChangeRow {
    #[serde(skip)]
    pub id: i64,
    pub(crate) referral_id: String,
    pub(crate) observed_at: DateTime<Utc>,
    pub run_id: Option<i64>,
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// The first sighting of each new row: one `created` row carrying its status.
pub(super) async fn record_created(
    conn: &mut PgConnection,
    rows: &[&ReferralRow],
    observed_at: DateTime<Utc>,
    run_id: Option<i64>,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO partner_center_referral_changes (referral_id, observed_at, run_id, field, new_value)
         SELECT id, $3, $4, 'created', status FROM UNNEST($1::text[], $2::text[]) AS t(id, status)",
        &rows.iter().map(|r| r.id.as_str()).collect::<Vec<&str>>() as &[&str],
        &rows.iter().map(|r| r.status.as_deref()).collect::<Vec<Option<&str>>>() as &[Option<&str>],
        observed_at,
        run_id,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Rows back from missing that the update did not touch (their payload is unchanged).
pub(super) async fn record_returned(
    conn: &mut PgConnection,
    ids: &[String],
    observed_at: DateTime<Utc>,
    run_id: Option<i64>,
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO partner_center_referral_changes (referral_id, observed_at, run_id, field)
         SELECT id, $2, $3, 'returned' FROM UNNEST($1::text[]) AS t(id)",
        ids,
        observed_at,
        run_id,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Every change of one referral, oldest first.
pub async fn for_referral(pool: &PgPool, referral_id: &str) -> Result<Vec<ChangeRow>, StoreError> {
    Ok(sqlx::query_as!(
        ChangeRow,
        r#"SELECT id, referral_id, observed_at, run_id, field, old_value AS old, new_value AS new
         FROM partner_center_referral_changes WHERE referral_id = $1 ORDER BY id"#,
        referral_id,
    )
    .fetch_all(pool)
    .await?)
}

/// A page of every referral's changes in the order they were written, for downstream
/// tools: those observed at or after `since`, after the row `after` (the cursor).
pub async fn page(
    pool: &PgPool,
    since: Option<DateTime<Utc>>,
    after: i64,
    limit: i64,
) -> Result<Vec<ChangeRow>, StoreError> {
    Ok(sqlx::query_as!(
        ChangeRow,
        r#"SELECT id, referral_id, observed_at, run_id, field, old_value AS old, new_value AS new
         FROM partner_center_referral_changes
         WHERE id > $1 AND ($2::timestamptz IS NULL OR observed_at >= $2)
         ORDER BY id LIMIT $3"#,
        after,
        since,
        limit,
    )
    .fetch_all(pool)
    .await?)
}
