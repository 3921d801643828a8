//! The referrals table: batched upserts, missing marks, parse errors, dry-run reads.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use sqlx::{PgConnection, PgPool};

use super::{StoreError, history};

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
    /// Ids seen for the first time.
    pub(crate) created: Vec<String>,
    /// Rows whose status or substatus moved, for notifications.
    pub status_changes: Vec<StatusChange>,
}

/// A status (or substatus) move as the history recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusChange {
    pub(crate) id: String,
    pub(crate) old_status: Option<String>,
    pub(crate) old_substatus: Option<String>,
    pub(crate) new_status: Option<String>,
    pub(crate) new_substatus: Option<String>,
}

/// A written row as it was before the write, for company bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changed {
    pub(crate) id: String,
    /// The customer domain the row had before (`None` when inserted or when it had none).
    pub old_domain: Option<String>,
    /// Whether the row counted towards its old company (it existed and was not missing).
    pub(crate) was_counted: bool,
}

/// Writes one batch. `rows` must hold each id once.
///
/// Which rows exist is read first (by id only), so new rows go in with `COPY` (the
/// fastest way into PostgreSQL: a first sync of 100,000 referrals is bound by it) and
/// existing rows with an `UPDATE` that only touches those whose payload changed. The
/// sync lock makes this safe: no other writer can insert the same id in between. A row
/// that was marked missing is brought back; on full passes every row returned gets
/// `last_seen_at` stamped, so the end of the pass can tell which referrals were not
/// returned.
///
/// The change history is written by the same statements (see `history.rs`): a
/// `created` row per new id, a row per tracked field an update moved (computed by
/// PostgreSQL from the old and the new row), a `returned` row per id back from missing.
/// `seen_at` is the history's `observed_at`, `run_id` its run.
pub async fn upsert(
    conn: &mut PgConnection,
    rows: &[ReferralRow],
    seen_at: DateTime<Utc>,
    run_id: Option<i64>,
    full: bool,
) -> Result<UpsertOutcome, StoreError> {
    if rows.is_empty() {
        return Ok(UpsertOutcome::default());
    }
    let existing = sqlx::query!(
        r#"SELECT id, customer_domain, missing_since IS NOT NULL AS "missing!"
           FROM partner_center_referrals WHERE id = ANY($1)"#,
        &rows.iter().map(|r| r.id.as_str()).collect::<Vec<&str>>() as &[&str],
    )
    .fetch_all(&mut *conn)
    .await?;
    let existing: HashMap<String, (Option<String>, bool)> = existing
        .into_iter()
        .map(|r| (r.id, (r.customer_domain, r.missing)))
        .collect();
    let (old, new): (Vec<&ReferralRow>, Vec<&ReferralRow>) =
        rows.iter().partition(|r| existing.contains_key(&r.id));

    let mut changes: Vec<Changed> = new
        .iter()
        .map(|r| Changed {
            id: r.id.clone(),
            old_domain: None,
            was_counted: false,
        })
        .collect();
    copy_new(conn, &new, seen_at).await?;
    history::record_created(conn, &new, seen_at, run_id).await?;
    let written = update_changed(conn, &old, seen_at, run_id).await?;
    let updated: HashSet<String> = written.iter().map(|w| w.id.clone()).collect();
    let rest: Vec<&str> = old
        .iter()
        .map(|r| r.id.as_str())
        .filter(|id| !updated.contains(*id))
        .collect();
    let restored: Vec<String> = if rest.is_empty() {
        Vec::new()
    } else {
        sqlx::query_scalar!(
            "UPDATE partner_center_referrals SET last_seen_at = $2, missing_since = NULL
             WHERE id = ANY($1) AND (missing_since IS NOT NULL OR ($3 AND last_seen_at < $2))
             RETURNING id",
            &rest as &[&str],
            seen_at,
            full,
        )
        .fetch_all(&mut *conn)
        .await?
    };
    for id in updated.iter().chain(
        restored
            .iter()
            .filter(|id| existing.get(*id).is_some_and(|(_, missing)| *missing)),
    ) {
        if let Some((old_domain, missing)) = existing.get(id) {
            changes.push(Changed {
                id: id.clone(),
                old_domain: old_domain.clone(),
                was_counted: !missing,
            });
        }
    }
    let returned: Vec<String> = restored
        .iter()
        .filter(|id| existing.get(*id).is_some_and(|(_, missing)| *missing))
        .cloned()
        .collect();
    history::record_returned(conn, &returned, seen_at, run_id).await?;
    let inserted = new.len() as u64;
    let updated = updated.len() as u64;
    let mut status_changes = Vec::new();
    for w in written {
        if w.old_status != w.new_status || w.old_substatus != w.new_substatus {
            status_changes.push(StatusChange {
                id: w.id,
                old_status: w.old_status,
                old_substatus: w.old_substatus,
                new_status: w.new_status,
                new_substatus: w.new_substatus,
            });
        }
    }
    Ok(UpsertOutcome {
        inserted,
        updated,
        unchanged: (rows.len() as u64).saturating_sub(inserted + updated),
        changes,
        created: new.iter().map(|r| r.id.clone()).collect(),
        status_changes,
    })
}

/// The columns `COPY` fills, in the order `copy_line` writes them. Not checked at compile
/// time: the macros cannot describe `COPY … FROM STDIN`, which also takes no parameters;
/// the integration tests write and read back every column through it.
const COPY_NEW: &str = "COPY partner_center_referrals
     (id, engagement_id, name, status, substatus, type, qualification, direction, customer_name,
      customer_country, customer_domain, deal_value, currency, created_at, updated_at, etag, payload,
      first_seen_at, last_seen_at)
     FROM STDIN";

/// Flushes the `COPY` buffer at this size, so a batch is never held twice in memory.
const COPY_CHUNK: usize = 256 * 1024;

/// Inserts rows known to be new with `COPY … FROM STDIN` (text format).
async fn copy_new(
    conn: &mut PgConnection,
    rows: &[&ReferralRow],
    seen_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let seen_at = copy_timestamp(seen_at);
    let mut copy = conn.copy_in_raw(COPY_NEW).await?;
    let mut buf = Vec::with_capacity(COPY_CHUNK + 8192);
    for row in rows {
        copy_line(&mut buf, row, &seen_at);
        if buf.len() >= COPY_CHUNK {
            copy.send(buf.as_slice()).await?;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        copy.send(buf.as_slice()).await?;
    }
    copy.finish().await?;
    Ok(())
}

/// One row of `COPY`'s text format: tab-separated, `\N` for null, backslash escapes.
fn copy_line(buf: &mut Vec<u8>, r: &ReferralRow, seen_at: &str) {
    let created_at = r.created_at.map(copy_timestamp);
    let updated_at = r.updated_at.map(copy_timestamp);
    let fields: [Option<&str>; 19] = [
        Some(&r.id),
        r.engagement_id.as_deref(),
        r.name.as_deref(),
        r.status.as_deref(),
        r.substatus.as_deref(),
        r.kind.as_deref(),
        r.qualification.as_deref(),
        r.direction.as_deref(),
        r.customer_name.as_deref(),
        r.customer_country.as_deref(),
        r.customer_domain.as_deref(),
        r.deal_value.as_deref(),
        r.currency.as_deref(),
        created_at.as_deref(),
        updated_at.as_deref(),
        r.etag.as_deref(),
        Some(r.payload.get()),
        Some(seen_at),
        Some(seen_at),
    ];
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            buf.push(b'\t');
        }
        match field {
            None => buf.extend_from_slice(b"\\N"),
            Some(text) => copy_escape(buf, text),
        }
    }
    buf.push(b'\n');
}

fn copy_escape(buf: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        buf.extend_from_slice(escaped);
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
}

/// Microseconds, truncated, as the binary encoding of the other statements stores them
/// (PostgreSQL would round extra digits in text instead).
fn copy_timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// An updated row: its id and its status before and after.
struct Written {
    id: String,
    old_status: Option<String>,
    old_substatus: Option<String>,
    new_status: Option<String>,
    new_substatus: Option<String>,
}

/// Updates the rows whose payload differs from the stored one, and records in the change
/// history what moved. `o` is the same table joined again: a statement's scans see the
/// rows as they were before it, so `o` holds the old values `RETURNING` compares with.
async fn update_changed(
    conn: &mut PgConnection,
    rows: &[&ReferralRow],
    seen_at: DateTime<Utc>,
    run_id: Option<i64>,
) -> Result<Vec<Written>, StoreError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let col = |f: fn(&ReferralRow) -> &Option<String>| {
        rows.iter()
            .map(|r| f(r).as_deref())
            .collect::<Vec<Option<&str>>>()
    };
    Ok(sqlx::query_as!(
        Written,
        r#"WITH u AS (
             UPDATE partner_center_referrals AS r SET
                 engagement_id = i.engagement_id, name = i.name, status = i.status, substatus = i.substatus,
                 type = i.type, qualification = i.qualification, direction = i.direction,
                 customer_name = i.customer_name, customer_country = i.customer_country,
                 customer_domain = i.customer_domain, deal_value = i.deal_value::numeric, currency = i.currency,
                 created_at = i.created_at, updated_at = i.updated_at, etag = i.etag, payload = i.payload::jsonb,
                 last_seen_at = $18, missing_since = NULL
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                    $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
                    $14::timestamptz[], $15::timestamptz[], $16::text[], $17::text[])
                AS i(id, engagement_id, name, status, substatus, type, qualification, direction, customer_name,
                     customer_country, customer_domain, deal_value, currency, created_at, updated_at, etag, payload),
                partner_center_referrals AS o
             WHERE r.id = i.id AND o.id = i.id AND r.payload IS DISTINCT FROM i.payload::jsonb
             RETURNING r.id, o.missing_since IS NOT NULL AS was_missing,
                 o.status AS old_status, o.substatus AS old_substatus,
                 r.status AS new_status, r.substatus AS new_substatus,
                 partner_center_referral_tracked_values(o.status, o.substatus, o.deal_value, o.currency, o.qualification, o.payload) AS old_v,
                 partner_center_referral_tracked_values(r.status, r.substatus, r.deal_value, r.currency, r.qualification, r.payload) AS new_v
         ), history AS (
             INSERT INTO partner_center_referral_changes (referral_id, observed_at, run_id, field, old_value, new_value)
             SELECT u.id, $18::timestamptz, $19::int8, f.field, f.old, f.new
             FROM u CROSS JOIN LATERAL unnest(partner_center_referral_tracked_names(), u.old_v, u.new_v) AS f(field, old, new)
             WHERE f.old IS DISTINCT FROM f.new
             UNION ALL
             SELECT u.id, $18::timestamptz, $19::int8, 'returned', NULL, NULL FROM u WHERE u.was_missing
         )
         SELECT id AS "id!", old_status, old_substatus, new_status, new_substatus FROM u"#,
        &rows.iter().map(|r| r.id.as_str()).collect::<Vec<&str>>() as &[&str],
        &col(|r| &r.engagement_id) as &[Option<&str>],
        &col(|r| &r.name) as &[Option<&str>],
        &col(|r| &r.status) as &[Option<&str>],
        &col(|r| &r.substatus) as &[Option<&str>],
        &col(|r| &r.kind) as &[Option<&str>],
        &col(|r| &r.qualification) as &[Option<&str>],
        &col(|r| &r.direction) as &[Option<&str>],
        &col(|r| &r.customer_name) as &[Option<&str>],
        &col(|r| &r.customer_country) as &[Option<&str>],
        &col(|r| &r.customer_domain) as &[Option<&str>],
        &col(|r| &r.deal_value) as &[Option<&str>],
        &col(|r| &r.currency) as &[Option<&str>],
        &rows.iter().map(|r| r.created_at).collect::<Vec<_>>() as &[Option<DateTime<Utc>>],
        &rows.iter().map(|r| r.updated_at).collect::<Vec<_>>() as &[Option<DateTime<Utc>>],
        &col(|r| &r.etag) as &[Option<&str>],
        &rows.iter().map(|r| r.payload.get()).collect::<Vec<&str>>() as &[&str],
        seen_at,
        run_id,
    )
    .fetch_all(&mut *conn)
    .await?)
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Marked {
    pub count: u64,
    pub ids: Vec<String>,
}

/// At the end of a full pass: referrals the pass did not return (their `last_seen_at`
/// predates the pass) get `missing_since`, and a `missing` row in the change history;
/// they are never deleted.
pub async fn mark_missing(
    conn: &mut PgConnection,
    pass_started: DateTime<Utc>,
    run_id: Option<i64>,
) -> Result<Marked, StoreError> {
    let ids = sqlx::query_scalar!(
        r#"WITH m AS (
             UPDATE partner_center_referrals SET missing_since = now()
             WHERE missing_since IS NULL AND last_seen_at < $1 RETURNING id
         ), history AS (
             INSERT INTO partner_center_referral_changes (referral_id, observed_at, run_id, field)
             SELECT id, $1, $2, 'missing' FROM m
         )
         SELECT id AS "id!" FROM m"#,
        pass_started,
        run_id,
    )
    .fetch_all(conn)
    .await?;
    Ok(Marked {
        count: ids.len() as u64,
        ids,
    })
}

/// A referral, or one field of it, that was not stored as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NewSyncError {
    /// Shortened when long; `None` when the referral had no readable id.
    pub referral_id: Option<String>,
    pub field: Option<String>,
    pub reason: String,
}

/// Records what a batch could not store as sent, in the batch's transaction.
pub(crate) async fn record_errors(
    conn: &mut PgConnection,
    run_id: i64,
    errors: &[NewSyncError],
) -> Result<(), StoreError> {
    if errors.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO partner_center_sync_errors (run_id, referral_id, field, reason)
         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[])",
        run_id,
        &errors
            .iter()
            .map(|e| e.referral_id.as_deref())
            .collect::<Vec<_>>() as &[Option<&str>],
        &errors
            .iter()
            .map(|e| e.field.as_deref())
            .collect::<Vec<_>>() as &[Option<&str>],
        &errors.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>() as &[&str],
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// What an upsert of `rows` would do, for `--dry-run`; reads only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WouldBe {
    Inserted,
    Updated,
    Unchanged,
}

pub(crate) async fn classify(
    pool: &PgPool,
    rows: &[ReferralRow],
) -> Result<Vec<(String, WouldBe)>, StoreError> {
    let found = sqlx::query!(
        r#"SELECT i.id AS "id!", r.id IS NULL AS "new!",
                  (r.payload IS DISTINCT FROM i.payload::jsonb) OR r.missing_since IS NOT NULL AS "changed!"
           FROM UNNEST($1::text[], $2::text[]) AS i(id, payload)
           LEFT JOIN partner_center_referrals r USING (id)"#,
        &rows.iter().map(|r| r.id.as_str()).collect::<Vec<&str>>() as &[&str],
        &rows.iter().map(|r| r.payload.get()).collect::<Vec<&str>>() as &[&str],
    )
    .fetch_all(pool)
    .await?;
    Ok(found
        .into_iter()
        .map(|r| (r.id, r.new, r.changed))
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
pub(crate) async fn would_be_missing(
    pool: &PgPool,
    seen: &[String],
    sample: i64,
) -> Result<(u64, Vec<String>), StoreError> {
    let count = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM partner_center_referrals
           WHERE missing_since IS NULL AND NOT (id = ANY($1))"#,
        seen,
    )
    .fetch_one(pool)
    .await?;
    let ids = sqlx::query_scalar!(
        "SELECT id FROM partner_center_referrals WHERE missing_since IS NULL AND NOT (id = ANY($1))
         ORDER BY id LIMIT $2",
        seen,
        sample,
    )
    .fetch_all(pool)
    .await?;
    Ok((u64::try_from(count).unwrap_or(0), ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_what_the_format_treats_specially() {
        let mut buf = Vec::new();
        copy_escape(&mut buf, "a\\b\tc\nd\re \"é\" 🚀 \\N");
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "a\\\\b\\tc\\nd\\re \"é\" 🚀 \\\\N"
        );
    }

    #[test]
    fn copy_timestamps_truncate_to_microseconds_like_the_binary_encoding() {
        let t = DateTime::parse_from_rfc3339("2025-03-04T05:06:07.1234569Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(copy_timestamp(t), "2025-03-04T05:06:07.123456Z");
    }

    #[test]
    fn a_copy_line_has_every_column_and_nulls_as_backslash_n() {
        let row = ReferralRow {
            id: "r1".into(),
            engagement_id: None,
            name: Some("Zoë\tO'Brien".into()),
            status: Some("Active".into()),
            substatus: None,
            kind: None,
            qualification: None,
            direction: None,
            customer_name: None,
            customer_country: None,
            customer_domain: None,
            deal_value: Some("1000.50".into()),
            currency: None,
            created_at: None,
            updated_at: None,
            etag: None,
            payload: RawValue::from_string(r#"{"name":"a\\b"}"#.into()).unwrap(),
        };
        let mut buf = Vec::new();
        copy_line(&mut buf, &row, "2025-01-01T00:00:00.000000Z");
        let line = String::from_utf8(buf).unwrap();
        let fields: Vec<&str> = line.trim_end_matches('\n').split('\t').collect();
        assert_eq!(fields.len(), 19);
        assert_eq!(fields[2], "Zoë\\tO'Brien");
        assert_eq!(fields[11], "1000.50");
        assert_eq!(fields[16], r#"{"name":"a\\\\b"}"#);
        assert_eq!(fields[1], "\\N");
        assert!(line.ends_with("Z\n"));
    }
}
