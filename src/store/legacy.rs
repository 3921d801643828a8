//! A `partner_center_referrals` these migrations did not create: the old Python
//! integration's table, which Hunter reads. `migrate` refuses to build on it (its columns
//! are not ours, and creating ours beside it is impossible); `migrate --adopt-legacy`
//! renames it to `partner_center_referrals_legacy`, keeping every row, so ours can take
//! the name Hunter reads.

use std::fmt;

use sqlx::{PgPool, Postgres, Transaction};

use super::StoreError;
use super::upgrade::SCHEMA_LOCK_KEY;

/// The name an adopted table gets; nothing is dropped.
const LEGACY_TABLE: &str = "partner_center_referrals_legacy";

/// What was found, for the operator to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyTable {
    /// The schema holding it.
    pub(crate) schema: String,
    /// `name type` per column, in table order.
    pub(crate) columns: Vec<String>,
    pub(crate) rows: i64,
}

impl fmt::Display for LegacyTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.partner_center_referrals ({} rows; columns: {})",
            self.schema,
            self.rows,
            self.columns.join(", ")
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LegacyError {
    #[error(
        "Found a table this daemon did not create: {0}. It is probably the old integration's, which Hunter reads. Nothing was changed. To keep its rows in `partner_center_referrals_legacy` and let this daemon create its own `partner_center_referrals` (refilled by a full sync), stop whatever writes to it and run `partner-center-sync migrate --adopt-legacy`. To keep it as it is, set `db_schema` (HUNTER_PARTNER_CENTER_DB_SCHEMA) to a schema of this daemon's own instead (Hunter then has to read that schema)."
    )]
    Found(LegacyTable),
    #[error(
        "Cannot adopt {0}: `partner_center_referrals_legacy` already exists in that schema. Nothing was changed. Rename or drop that table (it may be from an earlier adoption), then run `partner-center-sync migrate --adopt-legacy` again."
    )]
    LegacyNameTaken(LegacyTable),
}

/// Fails with [`LegacyError::Found`] when the schema holds a `partner_center_referrals`
/// that these migrations did not create.
pub(crate) async fn refuse_unknown_table(pool: &PgPool) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    match find(&mut tx).await? {
        Some(table) => Err(LegacyError::Found(table).into()),
        None => Ok(()),
    }
}

/// Renames a `partner_center_referrals` these migrations did not create, and its indexes,
/// out of the way, and logs how many rows it has. `None` when there was none.
pub(crate) async fn adopt(pool: &PgPool) -> Result<Option<i64>, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query_scalar!("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK_KEY)
        .fetch_one(&mut *tx)
        .await?;
    let Some(table) = find(&mut tx).await? else {
        return Ok(None);
    };
    let taken = sqlx::query_scalar!(
        r#"SELECT to_regclass($1) IS NOT NULL AS "taken!""#,
        LEGACY_TABLE
    )
    .fetch_one(&mut *tx)
    .await?;
    if taken {
        return Err(LegacyError::LegacyNameTaken(table).into());
    }
    // Its indexes move too: a `partner_center_referrals_pkey` left behind would stop ours
    // from being created.
    sqlx::query!(
        "DO $$
         DECLARE idx text;
         BEGIN
             ALTER TABLE partner_center_referrals RENAME TO partner_center_referrals_legacy;
             FOR idx IN
                 SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                 WHERE i.indrelid = 'partner_center_referrals_legacy'::regclass
                   AND c.relname LIKE 'partner\\_center\\_referrals%'
             LOOP
                 EXECUTE format('ALTER INDEX %I RENAME TO %I', idx,
                     'partner_center_referrals_legacy' || substr(idx, length('partner_center_referrals') + 1));
             END LOOP;
         END $$",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::warn!(
        event = "legacy_table_adopted",
        legacy_table = LEGACY_TABLE,
        legacy_rows = table.rows,
        schema = %table.schema,
        "Renamed the old integration's partner_center_referrals to partner_center_referrals_legacy ({} rows kept); the next sync is full, compare its count with this one.",
        table.rows
    );
    Ok(Some(table.rows))
}

/// The `partner_center_referrals` of the pool's schema when no migration of ours recorded
/// creating it.
async fn find(tx: &mut Transaction<'_, Postgres>) -> Result<Option<LegacyTable>, StoreError> {
    let found = sqlx::query!(
        r#"SELECT to_regclass('partner_center_referrals') IS NOT NULL AS "exists!",
                  to_regclass('partner_center_sync_migrations') IS NOT NULL AS "recorded!""#,
    )
    .fetch_one(&mut **tx)
    .await?;
    if !found.exists {
        return Ok(None);
    }
    if found.recorded {
        let ours = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM partner_center_sync_migrations WHERE version = 1) AS "ours!""#,
        )
        .fetch_one(&mut **tx)
        .await?;
        if ours {
            return Ok(None);
        }
    }
    let table = sqlx::query!(
        r#"SELECT n.nspname::text AS "schema!",
                  array_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum) AS "columns!"
           FROM pg_attribute a
           JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE a.attrelid = 'partner_center_referrals'::regclass AND a.attnum > 0 AND NOT a.attisdropped
           GROUP BY n.nspname"#,
    )
    .fetch_one(&mut **tx)
    .await?;
    // Checked against this daemon's table of the name; `count(*)` reads any table alike.
    let rows = sqlx::query_scalar!(r#"SELECT count(*) AS "rows!" FROM partner_center_referrals"#)
        .fetch_one(&mut **tx)
        .await?;
    Ok(Some(LegacyTable {
        schema: table.schema,
        columns: table.columns,
        rows,
    }))
}
