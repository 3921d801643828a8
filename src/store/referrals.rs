//! The referrals table: batched upserts, missing marks, parse errors, dry-run reads.

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use sqlx::{PgConnection, PgPool};

use super::StoreError;

/// One referral ready to upsert: typed columns plus the raw payload.
#[derive(Clone, Debug)]
pub struct ReferralRow {
    pub id: String,
    pub engagement_id: Option<String>,
    pub name: Option<String>,
    pub status: Option<String>,
    pub substatus: Option<String>,
    pub kind: Option<String>,
    pub qualification: Option<String>,
    pub direction: Option<String>,
    pub customer_name: Option<String>,
    pub customer_country: Option<String>,
    pub customer_domain: Option<String>,
    /// Decimal text, cast to `numeric` by PostgreSQL (no float rounding on the way).
    pub deal_value: Option<String>,
    pub currency: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub etag: Option<String>,
    /// Exactly the bytes Partner Center sent for this referral.
    pub payload: Box<RawValue>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpsertOutcome {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Rows whose company aggregates may have moved: inserted, changed, or back from missing.
    pub changes: Vec<Changed>,
}

/// A written row as it was before the write, for company bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changed {
    pub id: String,
    /// The customer domain the row had before (`None` when inserted or when it had none).
    pub old_domain: Option<String>,
    /// Whether the row counted towards its old company (it existed and was not missing).
    pub was_counted: bool,
}

/// One statement for the whole batch. A row is written when it is new, its payload
/// changed, it was marked missing, or (full passes) to stamp `last_seen_at` so the end of
/// the pass can tell which referrals were not returned. `rows` must hold each id once:
/// `ON CONFLICT DO UPDATE` cannot touch a row twice in one statement.
///
/// `input` is referenced twice, so PostgreSQL materialises it and parses each payload
/// into jsonb once. The `prev` CTE sees the table as it was before the insert (one
/// snapshot for the whole statement), which is how updated and unchanged are told apart.
pub async fn upsert(
    conn: &mut PgConnection,
    rows: &[ReferralRow],
    seen_at: DateTime<Utc>,
    full: bool,
) -> Result<UpsertOutcome, StoreError> {
    if rows.is_empty() {
        return Ok(UpsertOutcome::default());
    }
    let col = |f: fn(&ReferralRow) -> &Option<String>| {
        rows.iter()
            .map(|r| f(r).as_deref())
            .collect::<Vec<Option<&str>>>()
    };
    let written: Vec<(String, bool, bool, Option<String>, bool)> = sqlx::query_as(
        "WITH input AS (
             SELECT id, engagement_id, name, status, substatus, type, qualification, direction, customer_name,
                    customer_country, customer_domain, deal_value::numeric AS deal_value, currency, created_at,
                    updated_at, etag, payload::jsonb AS payload
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
                         $14::timestamptz[], $15::timestamptz[], $16::text[], $17::text[])
                 AS i(id, engagement_id, name, status, substatus, type, qualification, direction, customer_name,
                      customer_country, customer_domain, deal_value, currency, created_at, updated_at, etag, payload)
         ),
         prev AS (
             SELECT r.id, r.customer_domain, r.payload = i.payload AS same, r.missing_since IS NOT NULL AS was_missing
             FROM partner_center_referrals r JOIN input i USING (id)
         ),
         up AS (
             INSERT INTO partner_center_referrals AS r
                 (id, engagement_id, name, status, substatus, type, qualification, direction, customer_name,
                  customer_country, customer_domain, deal_value, currency, created_at, updated_at, etag, payload,
                  first_seen_at, last_seen_at, missing_since)
             SELECT id, engagement_id, name, status, substatus, type, qualification, direction, customer_name,
                    customer_country, customer_domain, deal_value, currency, created_at, updated_at, etag,
                    payload, $18, $18, NULL
             FROM input
             ON CONFLICT (id) DO UPDATE SET
                 engagement_id = excluded.engagement_id, name = excluded.name, status = excluded.status,
                 substatus = excluded.substatus, type = excluded.type, qualification = excluded.qualification,
                 direction = excluded.direction, customer_name = excluded.customer_name,
                 customer_country = excluded.customer_country, customer_domain = excluded.customer_domain,
                 deal_value = excluded.deal_value, currency = excluded.currency, created_at = excluded.created_at,
                 updated_at = excluded.updated_at, etag = excluded.etag, payload = excluded.payload,
                 last_seen_at = excluded.last_seen_at, missing_since = NULL
             WHERE r.payload IS DISTINCT FROM excluded.payload
                OR r.missing_since IS NOT NULL
                OR ($19 AND r.last_seen_at < excluded.last_seen_at)
             RETURNING r.id, (xmax = 0) AS inserted
         )
         SELECT up.id, up.inserted, COALESCE(NOT prev.same, false), prev.customer_domain,
                COALESCE(NOT prev.was_missing, false)
         FROM up LEFT JOIN prev USING (id)
         WHERE up.inserted OR NOT prev.same OR prev.was_missing",
    )
    .bind(rows.iter().map(|r| r.id.as_str()).collect::<Vec<&str>>())
    .bind(col(|r| &r.engagement_id))
    .bind(col(|r| &r.name))
    .bind(col(|r| &r.status))
    .bind(col(|r| &r.substatus))
    .bind(col(|r| &r.kind))
    .bind(col(|r| &r.qualification))
    .bind(col(|r| &r.direction))
    .bind(col(|r| &r.customer_name))
    .bind(col(|r| &r.customer_country))
    .bind(col(|r| &r.customer_domain))
    .bind(col(|r| &r.deal_value))
    .bind(col(|r| &r.currency))
    .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
    .bind(col(|r| &r.etag))
    .bind(rows.iter().map(|r| r.payload.get()).collect::<Vec<&str>>())
    .bind(seen_at)
    .bind(full)
    .fetch_all(conn)
    .await?;
    let inserted = written.iter().filter(|w| w.1).count() as u64;
    let updated = written.iter().filter(|w| w.2).count() as u64;
    let n = rows.len() as u64;
    Ok(UpsertOutcome {
        inserted,
        updated,
        unchanged: n.saturating_sub(inserted + updated),
        changes: written
            .into_iter()
            .map(|(id, _, _, old_domain, was_counted)| Changed {
                id,
                old_domain,
                was_counted,
            })
            .collect(),
    })
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Marked {
    pub count: u64,
    pub ids: Vec<String>,
}

/// At the end of a full pass: referrals the pass did not return (their `last_seen_at`
/// predates the pass) get `missing_since`; they are never deleted.
pub async fn mark_missing(
    conn: &mut PgConnection,
    pass_started: DateTime<Utc>,
) -> Result<Marked, StoreError> {
    let ids: Vec<String> = sqlx::query_scalar(
        "UPDATE partner_center_referrals SET missing_since = now()
         WHERE missing_since IS NULL AND last_seen_at < $1 RETURNING id",
    )
    .bind(pass_started)
    .fetch_all(conn)
    .await?;
    Ok(Marked {
        count: ids.len() as u64,
        ids,
    })
}

/// Records referrals whose fields could not all be read, in the batch's transaction.
pub async fn record_errors(
    conn: &mut PgConnection,
    run_id: i64,
    errors: &[(Option<String>, String)],
) -> Result<(), StoreError> {
    if errors.is_empty() {
        return Ok(());
    }
    sqlx::query("INSERT INTO sync_errors (run_id, referral_id, reason) SELECT $1, * FROM UNNEST($2::text[], $3::text[])")
        .bind(run_id)
        .bind(errors.iter().map(|(id, _)| id.as_deref()).collect::<Vec<_>>())
        .bind(errors.iter().map(|(_, r)| r.as_str()).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    Ok(())
}

/// What an upsert of `rows` would do, for `--dry-run`; reads only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WouldBe {
    Inserted,
    Updated,
    Unchanged,
}

pub async fn classify(
    pool: &PgPool,
    rows: &[ReferralRow],
) -> Result<Vec<(String, WouldBe)>, StoreError> {
    let found: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT i.id, r.id IS NULL, (r.payload IS DISTINCT FROM i.payload::jsonb) OR r.missing_since IS NOT NULL
         FROM UNNEST($1::text[], $2::text[]) AS i(id, payload)
         LEFT JOIN partner_center_referrals r USING (id)",
    )
    .bind(rows.iter().map(|r| r.id.as_str()).collect::<Vec<&str>>())
    .bind(rows.iter().map(|r| r.payload.get()).collect::<Vec<&str>>())
    .fetch_all(pool)
    .await?;
    Ok(found
        .into_iter()
        .map(|(id, new, changed)| {
            let would = if new {
                WouldBe::Inserted
            } else if changed {
                WouldBe::Updated
            } else {
                WouldBe::Unchanged
            };
            (id, would)
        })
        .collect())
}

/// For `--dry-run --full`: how many stored, not-yet-missing referrals are absent from
/// `seen`, and the first `sample` of their ids.
pub async fn would_be_missing(
    pool: &PgPool,
    seen: &[String],
    sample: i64,
) -> Result<(u64, Vec<String>), StoreError> {
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM partner_center_referrals WHERE missing_since IS NULL AND NOT (id = ANY($1))")
        .bind(seen)
        .fetch_one(pool)
        .await?;
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM partner_center_referrals WHERE missing_since IS NULL AND NOT (id = ANY($1)) ORDER BY id LIMIT $2",
    )
    .bind(seen)
    .bind(sample)
    .fetch_all(pool)
    .await?;
    Ok((u64::try_from(count).unwrap_or(0), ids))
}
