//! The notifications outbox (`partner_center_notifications`) and each destination's
//! delivery health (`partner_center_notify_destinations`).
//!
//! Rows are enqueued in the transaction of the change that caused them, `held` while
//! their run is still writing; the end of the run releases them, folding a destination's
//! rows into one digest when there are too many. The delivery task claims one due row at
//! a time by pushing its `next_attempt_at` out by a lease (`FOR UPDATE SKIP LOCKED`), so
//! a process killed mid-delivery leaves a row that is due again once the lease ends.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::StoreError;

/// An event for one destination, ready to enqueue.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NewNotification {
    pub destination: String,
    pub event: String,
    pub referral_id: Option<String>,
    pub run_id: Option<i64>,
    /// Unique per destination: enqueueing the same key twice is a no-op.
    pub dedupe_key: String,
    pub data: Value,
    /// Held until its run ends (referral events); operator events go out at once.
    pub held: bool,
}

/// Enqueues, skipping what is already there; returns how many rows were new.
pub(crate) async fn enqueue(
    conn: &mut PgConnection,
    items: &[NewNotification],
) -> Result<u64, StoreError> {
    if items.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query!(
        "INSERT INTO partner_center_notifications
             (delivery_id, destination, event, referral_id, run_id, dedupe_key, data, state)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[],
                              $7::jsonb[], $8::text[])
         ON CONFLICT (destination, dedupe_key) DO NOTHING",
        &items.iter().map(|_| Uuid::new_v4()).collect::<Vec<_>>(),
        &items.iter().map(|i| i.destination.as_str()).collect::<Vec<&str>>() as &[&str],
        &items.iter().map(|i| i.event.as_str()).collect::<Vec<&str>>() as &[&str],
        &items.iter().map(|i| i.referral_id.as_deref()).collect::<Vec<Option<&str>>>()
            as &[Option<&str>],
        &items.iter().map(|i| i.run_id).collect::<Vec<Option<i64>>>() as &[Option<i64>],
        &items.iter().map(|i| i.dedupe_key.as_str()).collect::<Vec<&str>>() as &[&str],
        &items.iter().map(|i| i.data.clone()).collect::<Vec<Value>>(),
        &items
            .iter()
            .map(|i| if i.held { "held" } else { "pending" })
            .collect::<Vec<&str>>() as &[&str],
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// The most rows a digest quotes; it counts them all.
const DIGEST_SAMPLE: i64 = 20;

/// Releases held rows: those of `run_id`, or with `None` every held row (runs that
/// ended without releasing theirs, found by the next run under the sync lock). Per run
/// and destination, more than `digest_over` rows become one `digest` row quoting the
/// first few; the rows it stands for are `merged`.
pub(crate) async fn release(
    conn: &mut PgConnection,
    run_id: Option<i64>,
    digest_over: u32,
) -> Result<(), StoreError> {
    sqlx::query!(
        "WITH big AS (
             SELECT run_id, destination, count(*) AS n FROM partner_center_notifications
             WHERE state = 'held' AND ($1::int8 IS NULL OR run_id = $1)
             GROUP BY run_id, destination HAVING count(*) > $2
         ), digest AS (
             INSERT INTO partner_center_notifications
                 (delivery_id, destination, event, run_id, dedupe_key, data, state)
             SELECT gen_random_uuid(), b.destination, 'digest', b.run_id,
                    'digest:' || coalesce(b.run_id::text, 'none'),
                    jsonb_build_object(
                        'count', b.n,
                        'events', (SELECT jsonb_object_agg(event, k) FROM (
                            SELECT event, count(*) AS k FROM partner_center_notifications h
                            WHERE h.state = 'held' AND h.destination = b.destination
                              AND h.run_id IS NOT DISTINCT FROM b.run_id GROUP BY event) AS per_event),
                        'items', (SELECT jsonb_agg(data ORDER BY id) FROM (
                            SELECT id, data FROM partner_center_notifications h
                            WHERE h.state = 'held' AND h.destination = b.destination
                              AND h.run_id IS NOT DISTINCT FROM b.run_id ORDER BY id LIMIT $3) AS first)),
                    'pending'
             FROM big b
             ON CONFLICT (destination, dedupe_key) DO NOTHING
         )
         UPDATE partner_center_notifications n
         SET state = CASE WHEN EXISTS (
                 SELECT 1 FROM big b WHERE b.destination = n.destination
                   AND b.run_id IS NOT DISTINCT FROM n.run_id) THEN 'merged' ELSE 'pending' END,
             next_attempt_at = now()
         WHERE n.state = 'held' AND ($1::int8 IS NULL OR n.run_id = $1)",
        run_id,
        i64::from(digest_over),
        DIGEST_SAMPLE,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A claimed row, to send now.
#[derive(Clone, Debug)]
pub(crate) struct Due {
    pub id: i64,
    pub delivery_id: Uuid,
    pub event: String,
    pub data: Value,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

/// Claims the oldest due row of `destination` whose referral has no older row still
/// pending (so one referral's events arrive in order), for `lease`.
pub(crate) async fn claim(
    pool: &PgPool,
    destination: &str,
    lease: Duration,
) -> Result<Option<Due>, StoreError> {
    Ok(sqlx::query_as!(
        Due,
        "UPDATE partner_center_notifications
         SET next_attempt_at = now() + make_interval(secs => $2), attempts = attempts + 1
         WHERE id = (
             SELECT id FROM partner_center_notifications n
             WHERE n.state = 'pending' AND n.destination = $1 AND n.next_attempt_at <= now()
               AND NOT EXISTS (
                   SELECT 1 FROM partner_center_notifications p
                   WHERE p.state = 'pending' AND p.destination = n.destination
                     AND p.referral_id = n.referral_id AND p.id < n.id)
             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING id, delivery_id, event, data, attempts, created_at",
        destination,
        lease.as_secs_f64(),
    )
    .fetch_optional(pool)
    .await?)
}

/// The receiver accepted it.
pub(crate) async fn mark_delivered(
    pool: &PgPool,
    destination: &str,
    id: i64,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "UPDATE partner_center_notifications SET state = 'delivered', delivered_at = now(), last_error = NULL
         WHERE id = $1",
        id,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO partner_center_notify_destinations (name, last_delivered_at) VALUES ($1, now())
         ON CONFLICT (name) DO UPDATE SET consecutive_failures = 0, last_delivered_at = now()",
        destination,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The attempt failed: retried after `retry_in`, the destination's failure counted.
/// Returns the destination's consecutive failures.
pub(crate) async fn mark_failed(
    pool: &PgPool,
    destination: &str,
    id: i64,
    error: &str,
    retry_in: Duration,
) -> Result<i32, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "UPDATE partner_center_notifications
         SET last_error = $2, next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1",
        id,
        error,
        retry_in.as_secs_f64(),
    )
    .execute(&mut *tx)
    .await?;
    let failures = sqlx::query_scalar!(
        "INSERT INTO partner_center_notify_destinations (name, consecutive_failures, failed_total, last_error)
         VALUES ($1, 1, 1, $2)
         ON CONFLICT (name) DO UPDATE SET consecutive_failures = partner_center_notify_destinations.consecutive_failures + 1,
             failed_total = partner_center_notify_destinations.failed_total + 1, last_error = $2
         RETURNING consecutive_failures",
        destination,
        error,
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(failures)
}

/// A destination's delivery record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DestinationStats {
    pub name: String,
    /// Held and pending rows: the backlog.
    pub pending: i64,
    pub consecutive_failures: i32,
    pub failed_total: i64,
    pub last_error: Option<String>,
    pub last_delivered_at: Option<DateTime<Utc>>,
}

/// The record of each named destination (zeros for one that has seen nothing yet).
pub(crate) async fn destination_stats(
    pool: &PgPool,
    names: &[String],
) -> Result<Vec<DestinationStats>, StoreError> {
    Ok(sqlx::query_as!(
        DestinationStats,
        r#"SELECT n.name AS "name!",
                (SELECT count(*) FROM partner_center_notifications q
                 WHERE q.destination = n.name AND q.state IN ('held', 'pending')) AS "pending!",
                coalesce(d.consecutive_failures, 0) AS "consecutive_failures!",
                coalesce(d.failed_total, 0) AS "failed_total!", d.last_error AS "last_error?",
                d.last_delivered_at AS "last_delivered_at?"
         FROM UNNEST($1::text[]) WITH ORDINALITY AS n(name, pos)
         LEFT JOIN partner_center_notify_destinations d ON d.name = n.name
         ORDER BY n.pos"#,
        names,
    )
    .fetch_all(pool)
    .await?)
}

/// A row as the API lists it. `state` is `pending` (held or waiting), `failed` (its
/// last attempt failed; it is retried) or `delivered`; digest members are not listed.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct NotificationRow {
    pub id: i64,
    #[schema(value_type = String)]
    pub delivery_id: Uuid,
    pub destination: String,
    pub event: String,
    pub referral_id: Option<String>,
    pub state: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// The newest rows first.
pub(crate) async fn recent(pool: &PgPool, limit: i64) -> Result<Vec<NotificationRow>, StoreError> {
    Ok(sqlx::query_as!(
        NotificationRow,
        r#"SELECT id, delivery_id, destination, event, referral_id,
                CASE WHEN state = 'delivered' THEN 'delivered'
                     WHEN last_error IS NOT NULL THEN 'failed' ELSE 'pending' END AS "state!",
                attempts, last_error, created_at, delivered_at
         FROM partner_center_notifications WHERE state <> 'merged'
         ORDER BY id DESC LIMIT $1"#,
        limit,
    )
    .fetch_all(pool)
    .await?)
}

/// What a message says about a referral.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Snapshot {
    pub id: String,
    pub name: Option<String>,
    pub customer_name: Option<String>,
    pub deal_value: Option<String>,
    pub currency: Option<String>,
    pub status: Option<String>,
    pub substatus: Option<String>,
    pub direction: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The referrals `ids` name, as stored now (inside the writing transaction: as just written).
pub(crate) async fn snapshots(
    conn: &mut PgConnection,
    ids: &[String],
) -> Result<Vec<Snapshot>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as!(
        Snapshot,
        r#"SELECT id, name, customer_name, deal_value::text AS deal_value, currency, status, substatus,
                direction, type AS kind,
                partner_center_payload_timestamp(payload->>'expirationDateTime') AS expires_at
         FROM partner_center_referrals WHERE id = ANY($1) ORDER BY id"#,
        ids,
    )
    .fetch_all(conn)
    .await?)
}

/// New referrals (still listed) whose expiration lies between now and `within` ahead.
pub(crate) async fn expiring(
    conn: &mut PgConnection,
    within: Duration,
) -> Result<Vec<Snapshot>, StoreError> {
    Ok(sqlx::query_as!(
        Snapshot,
        r#"SELECT id, name, customer_name, deal_value::text AS deal_value, currency, status, substatus,
                direction, type AS kind,
                partner_center_payload_timestamp(payload->>'expirationDateTime') AS expires_at
         FROM partner_center_referrals
         WHERE status = 'New' AND missing_since IS NULL
           AND partner_center_payload_timestamp(payload->>'expirationDateTime')
               BETWEEN now() AND now() + make_interval(secs => $1)
         ORDER BY id"#,
        within.as_secs_f64(),
    )
    .fetch_all(conn)
    .await?)
}

/// True when no referral was ever stored: the next run is the first import.
pub(crate) async fn table_is_empty(pool: &PgPool) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT NOT EXISTS (SELECT 1 FROM partner_center_referrals) AS "empty!""#
    )
    .fetch_one(pool)
    .await?)
}
