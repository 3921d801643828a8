//! Companies derived from referral customer domains, kept in step with the referrals in
//! the same transaction.

use sqlx::PgConnection;

use super::StoreError;

/// Recomputes the aggregates of `domains` from the referrals table: name and status of
/// the most recently updated referral, count of referrals not marked missing. A domain
/// with no such referral left loses its row.
pub async fn refresh(conn: &mut PgConnection, domains: &[String]) -> Result<(), StoreError> {
    if domains.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "WITH d AS (SELECT DISTINCT unnest($1::text[]) AS domain),
         agg AS (
             SELECT r.customer_domain AS domain,
                    (array_agg(r.customer_name ORDER BY r.updated_at DESC NULLS LAST, r.id)
                        FILTER (WHERE r.customer_name IS NOT NULL))[1] AS name,
                    count(*)::int AS referral_count,
                    (array_agg(r.status ORDER BY r.updated_at DESC NULLS LAST, r.id))[1] AS latest_status,
                    max(r.updated_at) AS latest_referral_at
             FROM partner_center_referrals r JOIN d ON r.customer_domain = d.domain
             WHERE r.missing_since IS NULL
             GROUP BY r.customer_domain
         ),
         gone AS (
             DELETE FROM companies c USING d
             WHERE c.domain = d.domain AND NOT EXISTS (SELECT 1 FROM agg WHERE agg.domain = d.domain)
         )
         INSERT INTO companies (domain, name, referral_count, latest_status, latest_referral_at, updated_at)
         SELECT domain, name, referral_count, latest_status, latest_referral_at, now() FROM agg
         ON CONFLICT (domain) DO UPDATE SET name = excluded.name, referral_count = excluded.referral_count,
             latest_status = excluded.latest_status, latest_referral_at = excluded.latest_referral_at, updated_at = now()",
    )
    .bind(domains)
    .execute(conn)
    .await?;
    Ok(())
}
