//! Upgrades a database made by the first versions of this daemon, whose tables had
//! generic names (`sync_runs`, `sync_state`, `companies`, `sync_errors`) and whose
//! migrations sqlx recorded in its default `_sqlx_migrations`.
//!
//! The migrations now create `partner_center_…` names directly, so a fresh install never
//! creates an unprefixed table; a rename migration could not promise that, because the old
//! migration creating `companies` would still run first. An earlier deployment is
//! recognised by the checksums of the migrations it applied, and in one transaction its
//! tables (with their indexes, sequences and constraints) and its bookkeeping table get
//! today's names and its recorded checksums today's files. Nothing is copied, so every row
//! stays. `migrations/README.md` has the whole story.
//!
//! The statements on `_sqlx_migrations` and the renames are not checked at compile time:
//! they name objects that only an earlier version's database has, which the database the
//! checks run against (built by today's migrations) cannot have.

use sqlx::{PgPool, Postgres, Transaction};

use super::{MIGRATIONS_TABLE, MIGRATOR, StoreError};

/// Serialises [`from_unprefixed_names`] and legacy adoption between the daemons of an HA
/// pair starting at once; sqlx's own migration lock covers only the migrator.
/// ASCII "pcschm" packed into an i64.
pub(super) const SCHEMA_LOCK_KEY: i64 = 0x7063_7363_686d;

/// The SHA-384 of each migration file as the first versions shipped it, by version
/// (tests/it/fixtures/migrations_v0_1 holds the files).
const UNPREFIXED_CHECKSUMS: [(i64, &str); 4] = [
    (
        1,
        "ed696926b89b88b1f57a3e06103b284d891954c363478091f6a277dc26ea462b6fcc3910e29191388beb14c81341211a",
    ),
    (
        2,
        "ae508930b8fa3e2977ea8a54a45c01560d0b48d174554b359aea15c7a7e48b43dee23a0a5f4c9fb327defd79d6b8441c",
    ),
    (
        3,
        "6092619d455cbc4cb7c4ddb83ba57c8070e0670eb6f9abd4bd6d8ac061e77de3cfe0088bf08edd4672941e78c368d618",
    ),
    (
        4,
        "69f3021d00d241e39eb6992abd772d0419437b30b5a499481c236815ef347b32a225f69a5b9abf65f79d47a8e8b92f78",
    ),
];

/// The renames that give a version's objects the names today's migrations create, so an
/// upgraded database and a fresh one cannot be told apart (a test compares their catalogs).
const RENAMES: &[(i64, &str)] = &[
    (
        2,
        "ALTER TABLE sync_runs RENAME TO partner_center_sync_runs;
         ALTER SEQUENCE sync_runs_id_seq RENAME TO partner_center_sync_runs_id_seq;
         ALTER INDEX sync_runs_pkey RENAME TO partner_center_sync_runs_pkey;
         ALTER INDEX sync_runs_queued_at_idx RENAME TO partner_center_sync_runs_queued_at_idx;
         ALTER INDEX sync_runs_active_idx RENAME TO partner_center_sync_runs_active_idx;
         ALTER TABLE partner_center_sync_runs RENAME CONSTRAINT sync_runs_trigger_check TO partner_center_sync_runs_trigger_check;
         ALTER TABLE partner_center_sync_runs RENAME CONSTRAINT sync_runs_mode_check TO partner_center_sync_runs_mode_check;
         ALTER TABLE partner_center_sync_runs RENAME CONSTRAINT sync_runs_status_check TO partner_center_sync_runs_status_check;
         ALTER TABLE sync_state RENAME TO partner_center_sync_state;
         ALTER INDEX sync_state_pkey RENAME TO partner_center_sync_state_pkey;
         ALTER TABLE partner_center_sync_state RENAME CONSTRAINT sync_state_id_check TO partner_center_sync_state_id_check;
         ALTER TABLE companies RENAME TO partner_center_companies;
         ALTER INDEX companies_pkey RENAME TO partner_center_companies_pkey;
         ALTER INDEX companies_referral_count_idx RENAME TO partner_center_companies_referral_count_idx;
         ALTER TABLE sync_errors RENAME TO partner_center_sync_errors;
         ALTER SEQUENCE sync_errors_id_seq RENAME TO partner_center_sync_errors_id_seq;
         ALTER INDEX sync_errors_pkey RENAME TO partner_center_sync_errors_pkey;
         ALTER INDEX sync_errors_run_idx RENAME TO partner_center_sync_errors_run_idx;
         ALTER TABLE partner_center_sync_errors RENAME CONSTRAINT sync_errors_run_id_fkey TO partner_center_sync_errors_run_id_fkey;",
    ),
    (
        4,
        "ALTER FUNCTION payload_timestamp(text) RENAME TO partner_center_payload_timestamp;",
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error(
        "This schema's `_sqlx_migrations` table records migrations of an earlier version of partner-center-sync, but not in a state this version can upgrade ({found}). Nothing was changed. Finish or repair that version's migrations with the version that made them (or restore a backup), then run `partner-center-sync migrate` again."
    )]
    Unrecognised { found: String },
}

/// Renames an earlier deployment's tables to today's names, keeping every row. `true` when
/// it did; `false` (touching nothing) when the schema holds no such deployment.
pub(crate) async fn from_unprefixed_names(pool: &PgPool) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query_scalar!("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK_KEY)
        .fetch_one(&mut *tx)
        .await?;
    let Some(applied) = earlier_deployment(&mut tx).await? else {
        return Ok(false);
    };
    for (version, sql) in RENAMES {
        if applied.contains(version) {
            sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                .execute(&mut *tx)
                .await?;
        }
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER TABLE _sqlx_migrations RENAME TO {MIGRATIONS_TABLE};
         ALTER INDEX _sqlx_migrations_pkey RENAME TO {MIGRATIONS_TABLE}_pkey;"
    )))
    .execute(&mut *tx)
    .await?;
    for migration in MIGRATOR.iter().filter(|m| applied.contains(&m.version)) {
        sqlx::query!(
            "UPDATE partner_center_sync_migrations SET checksum = $2 WHERE version = $1",
            migration.version,
            migration.checksum.as_ref(),
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    tracing::info!(
        event = "tables_renamed",
        migrations = applied.len(),
        "Renamed this daemon's tables from an earlier version to their partner_center_ names (sync_runs, sync_state, companies, sync_errors); every row is kept."
    );
    Ok(true)
}

/// The versions an earlier deployment applied, when `_sqlx_migrations` is that
/// deployment's and today's bookkeeping table does not exist yet. A `_sqlx_migrations`
/// holding none of the earlier checksums belongs to someone else and is left alone.
async fn earlier_deployment(
    tx: &mut Transaction<'_, Postgres>,
) -> Result<Option<Vec<i64>>, StoreError> {
    let found = sqlx::query!(
        r#"SELECT to_regclass('partner_center_sync_migrations') IS NOT NULL AS "ours!",
                  to_regclass('_sqlx_migrations') IS NOT NULL AS "theirs!""#,
    )
    .fetch_one(&mut **tx)
    .await?;
    if found.ours || !found.theirs {
        return Ok(None);
    }
    // Not `query_as!`: `_sqlx_migrations` exists only in an earlier deployment's database,
    // never in the one the compile-time check prepares from today's migrations.
    let rows: Vec<(i64, String, bool)> = sqlx::query_as(
        "SELECT version, encode(checksum, 'hex'), success FROM _sqlx_migrations ORDER BY version",
    )
    .fetch_all(&mut **tx)
    .await?;
    let known = |v: i64, sum: &str| UNPREFIXED_CHECKSUMS.contains(&(v, sum));
    if !rows.iter().any(|(v, sum, _)| known(*v, sum)) {
        return Ok(None);
    }
    let clean = rows.iter().enumerate().all(|(i, (v, sum, success))| {
        *success && known(*v, sum) && usize::try_from(*v).is_ok_and(|v| v == i + 1)
    });
    if !clean {
        let found = rows
            .iter()
            .map(|(v, _, success)| {
                format!("version {v}{}", if *success { "" } else { " (failed)" })
            })
            .collect::<Vec<_>>()
            .join(", ");
        return Err(UpgradeError::Unrecognised { found }.into());
    }
    Ok(Some(rows.into_iter().map(|(v, _, _)| v).collect()))
}
