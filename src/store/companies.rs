//! Companies derived from referral customer domains, kept in step with the referrals in
//! the same transaction.
//!
//! Each batch applies deltas (counts up or down, a newer referral becoming the latest)
//! rather than re-aggregating its domains: re-aggregation reads every referral of every
//! touched domain, which grows with the table and made large full syncs quadratic. A
//! domain that lost a referral is re-aggregated exactly (its latest referral may be the
//! one that left), and every full pass rebuilds the whole table in its last transaction,
//! so no drift can outlive a day.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::StoreError;
use super::referrals::{Changed, ReferralRow};

/// The latest referral seen for a domain in this batch, and the count change.
#[derive(Default)]
struct Delta<'a> {
    count: i32,
    name: Option<&'a str>,
    status: Option<&'a str>,
    at: Option<DateTime<Utc>>,
    has_candidate: bool,
}

/// Applies the company side of one upsert: `changes` from
/// [`super::referrals::upsert`], `rows` the batch it wrote.
pub async fn apply(
    conn: &mut PgConnection,
    rows: &[ReferralRow],
    changes: &[Changed],
) -> Result<(), StoreError> {
    if changes.is_empty() {
        return Ok(());
    }
    let by_id: BTreeMap<&str, &ReferralRow> = rows.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut deltas: BTreeMap<&str, Delta<'_>> = BTreeMap::new();
    let mut lost: BTreeSet<String> = BTreeSet::new();
    for c in changes {
        let Some(row) = by_id.get(c.id.as_str()) else {
            continue;
        };
        let new = row.customer_domain.as_deref();
        let moved = c.was_counted && c.old_domain.as_deref() != new;
        if moved && let Some(old) = c.old_domain.as_deref() {
            lost.insert(old.to_owned());
        }
        if let Some(domain) = new {
            let d = deltas.entry(domain).or_default();
            if !c.was_counted || moved {
                d.count += 1;
            }
            if !d.has_candidate || row.updated_at >= d.at {
                d.has_candidate = true;
                d.name = row.customer_name.as_deref().or(d.name);
                d.status = row.status.as_deref();
                d.at = row.updated_at;
            }
        }
    }
    if !deltas.is_empty() {
        sqlx::query!(
            "INSERT INTO partner_center_companies AS c (domain, name, referral_count, latest_status, latest_referral_at, updated_at)
             SELECT d, n, k, s, a, now()
             FROM UNNEST($1::text[], $2::text[], $3::int[], $4::text[], $5::timestamptz[]) AS t(d, n, k, s, a)
             ON CONFLICT (domain) DO UPDATE SET
                 referral_count = c.referral_count + excluded.referral_count,
                 name = CASE WHEN c.latest_referral_at IS NULL OR excluded.latest_referral_at >= c.latest_referral_at
                             THEN COALESCE(excluded.name, c.name) ELSE c.name END,
                 latest_status = CASE WHEN c.latest_referral_at IS NULL OR excluded.latest_referral_at >= c.latest_referral_at
                                      THEN excluded.latest_status ELSE c.latest_status END,
                 latest_referral_at = GREATEST(c.latest_referral_at, excluded.latest_referral_at),
                 updated_at = now()",
            &deltas.keys().copied().collect::<Vec<&str>>() as &[&str],
            &deltas.values().map(|d| d.name).collect::<Vec<_>>() as &[Option<&str>],
            &deltas.values().map(|d| d.count).collect::<Vec<_>>() as &[i32],
            &deltas.values().map(|d| d.status).collect::<Vec<_>>() as &[Option<&str>],
            &deltas.values().map(|d| d.at).collect::<Vec<_>>() as &[Option<DateTime<Utc>>],
        )
        .execute(&mut *conn)
        .await?;
    }
    refresh(conn, &lost.into_iter().collect::<Vec<_>>()).await
}

/// `query!` with one company's columns aggregated from its referrals between `$head` and
/// `$tail`, shared by `refresh` and `rebuild` so the two can never disagree; a macro because
/// the SQL must stay literals for the compile-time check.
macro_rules! with_company_aggregate {
    ($head:literal, $tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query!(
            $head
                + "SELECT r.customer_domain AS domain,
                    (array_agg(r.customer_name ORDER BY r.updated_at DESC NULLS LAST, r.id)
                        FILTER (WHERE r.customer_name IS NOT NULL))[1] AS name,
                    count(*)::int AS referral_count,
                    (array_agg(r.status ORDER BY r.updated_at DESC NULLS LAST, r.id))[1] AS latest_status,
                    max(r.updated_at) AS latest_referral_at
             FROM partner_center_referrals r"
                + $tail
            $(, $arg)*
        )
    };
}

/// Re-aggregates `domains` exactly from the referrals table: name (latest non-empty) and
/// status of the most recently updated referral, count of referrals not marked missing.
/// A domain with no such referral left loses its row.
async fn refresh(conn: &mut PgConnection, domains: &[String]) -> Result<(), StoreError> {
    if domains.is_empty() {
        return Ok(());
    }
    with_company_aggregate!(
        "WITH d AS (SELECT DISTINCT unnest($1::text[]) AS domain),
         agg AS (
             ",
        " JOIN d ON r.customer_domain = d.domain
             WHERE r.missing_since IS NULL
             GROUP BY r.customer_domain
         ),
         gone AS (
             DELETE FROM partner_center_companies c USING d
             WHERE c.domain = d.domain AND NOT EXISTS (SELECT 1 FROM agg WHERE agg.domain = d.domain)
         )
         INSERT INTO partner_center_companies (domain, name, referral_count, latest_status, latest_referral_at, updated_at)
         SELECT domain, name, referral_count, latest_status, latest_referral_at, now() FROM agg
         ON CONFLICT (domain) DO UPDATE SET name = excluded.name, referral_count = excluded.referral_count,
             latest_status = excluded.latest_status, latest_referral_at = excluded.latest_referral_at, updated_at = now()",
        domains,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Re-aggregates every company from the referrals table, writing only rows that differ;
/// run in the last transaction of each full pass.
pub(crate) async fn rebuild(conn: &mut PgConnection) -> Result<(), StoreError> {
    with_company_aggregate!(
        "WITH agg AS (
             ",
        "
             WHERE r.missing_since IS NULL AND r.customer_domain IS NOT NULL
             GROUP BY r.customer_domain
         ),
         gone AS (
             DELETE FROM partner_center_companies c WHERE NOT EXISTS (SELECT 1 FROM agg WHERE agg.domain = c.domain)
         )
         INSERT INTO partner_center_companies AS c (domain, name, referral_count, latest_status, latest_referral_at, updated_at)
         SELECT domain, name, referral_count, latest_status, latest_referral_at, now() FROM agg
         ON CONFLICT (domain) DO UPDATE SET name = excluded.name, referral_count = excluded.referral_count,
             latest_status = excluded.latest_status, latest_referral_at = excluded.latest_referral_at, updated_at = now()
         WHERE (c.name, c.referral_count, c.latest_status, c.latest_referral_at)
               IS DISTINCT FROM (excluded.name, excluded.referral_count, excluded.latest_status, excluded.latest_referral_at)",
    )
    .execute(conn)
    .await?;
    Ok(())
}
