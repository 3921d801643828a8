//! PostgreSQL: the pool, the embedded migrations, and the queries of each concern.
//!
//! Every object this crate creates is named `partner_center_…`, so it shares a schema with
//! the host application (Hunter) without meeting its tables; `db_schema` can give it a
//! schema of its own. `migrations/README.md` says how the names came to be and how an
//! earlier deployment is upgraded (`upgrade.rs`) or an older integration's table adopted
//! (`legacy.rs`).

pub mod companies;
mod compression;
pub(crate) mod filter;
pub mod history;
mod legacy;
pub mod lock;
pub(crate) mod notifications;
pub(crate) mod pipeline;
pub(crate) mod read;
pub mod referrals;
pub mod runs;
pub(crate) mod state;
mod upgrade;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::exit::Exit;

/// The schema, embedded so the binary carries its own migrations.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Where the migrator records what it applied. Not sqlx's default `_sqlx_migrations`: the
/// host application may use sqlx in the same schema, and its history is not ours.
const MIGRATIONS_TABLE: &str = "partner_center_sync_migrations";

/// The schema the tables live in when `db_schema` is not set: where Hunter reads
/// `partner_center_referrals`.
pub(crate) const DEFAULT_SCHEMA: &str = "public";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Cannot use the database URL from `database_url`/DATABASE_URL: {0}")]
    BadUrl(#[source] sqlx::Error),
    #[error(
        "Cannot connect to PostgreSQL at {target}: {source}. Check that it is running and DATABASE_URL is right."
    )]
    Connect {
        target: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("Cannot apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Legacy(#[from] legacy::LegacyError),
    #[error(transparent)]
    Upgrade(#[from] upgrade::UpgradeError),
    #[error("Database query failed: {0}")]
    Query(#[from] sqlx::Error),
}

/// How long the pool keeps a connection nobody uses. Runs are minutes apart (600 s in
/// production), so between them an idle daemon holds no server backend and no buffers.
pub(crate) const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

impl StoreError {
    /// A database the operator must look at before anything is written is a setup problem
    /// (78, which systemd does not restart on); the rest are runtime failures.
    pub(crate) fn exit(&self) -> Exit {
        match self {
            StoreError::Legacy(_) | StoreError::Upgrade(_) => Exit::Config,
            _ => Exit::Failure,
        }
    }
}

/// Connects lazily-checked: the first connection is made now so a bad URL fails at start-up.
/// Every connection (the sync lock's too) resolves table names in `schema` alone, so the
/// migrations create their tables there and the queries need no schema prefix.
pub async fn connect(url: &SecretString, schema: &str) -> Result<PgPool, StoreError> {
    let options: PgConnectOptions = url.expose_secret().parse().map_err(StoreError::BadUrl)?;
    // PostgreSQL's NOTICEs (`relation "_sqlx_migrations" already exists, skipping` at
    // every start) reach the log through sqlx at INFO; they never ask anything of an
    // operator, so the server is asked not to send them. Warnings and errors still come.
    let options = options.options([("client_min_messages", "warning"), ("search_path", schema)]);
    let target = format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("postgres")
    );
    PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .idle_timeout(POOL_IDLE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|source| StoreError::Connect { target, source })
}

/// What [`migrate_with`] does with a `partner_center_referrals` these migrations did not
/// create (the old integration's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnLegacy {
    /// Stop before changing anything, describing the table (`migrate`, `run`, `sync`).
    Refuse,
    /// Rename it to `partner_center_referrals_legacy` and make the next sync full
    /// (`migrate --adopt-legacy`).
    Adopt,
}

/// What [`migrate_with`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Migrated {
    /// Migrations applied now (0 when the schema was current).
    pub applied: usize,
    /// Tables of an earlier version of this daemon renamed to today's names.
    pub upgraded: bool,
    /// The rows of an older integration's table moved to `partner_center_referrals_legacy`.
    pub adopted_legacy_rows: Option<i64>,
}

/// Applies pending migrations (a no-op when the schema is current), then prefers lz4 for
/// the referral payloads where the server has it. Refuses, touching nothing, when the
/// schema holds a `partner_center_referrals` these migrations did not create.
pub async fn migrate(pool: &PgPool) -> Result<usize, StoreError> {
    Ok(migrate_with(pool, OnLegacy::Refuse).await?.applied)
}

/// [`migrate`], first renaming an earlier version's tables (`upgrade.rs`) and refusing or
/// adopting an older integration's table (`legacy.rs`).
pub(crate) async fn migrate_with(
    pool: &PgPool,
    on_legacy: OnLegacy,
) -> Result<Migrated, StoreError> {
    ensure_schema(pool).await?;
    let upgraded = upgrade::from_unprefixed_names(pool).await?;
    let adopted_legacy_rows = match on_legacy {
        OnLegacy::Adopt => legacy::adopt(pool).await?,
        OnLegacy::Refuse => {
            legacy::refuse_unknown_table(pool).await?;
            None
        }
    };
    let before = applied_count(pool).await?;
    migrator().run(pool).await?;
    if adopted_legacy_rows.is_some() {
        state::forget_cursor(pool).await?;
    }
    compression::prefer_lz4(pool).await;
    Ok(Migrated {
        applied: applied_count(pool).await?.saturating_sub(before),
        upgraded,
        adopted_legacy_rows,
    })
}

/// The embedded migrations, recorded in [`MIGRATIONS_TABLE`].
fn migrator() -> Migrator {
    let mut migrator = Migrator::with_migrations(MIGRATOR.iter().cloned().collect());
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator
}

/// Creates the `db_schema` the pool's `search_path` names when it does not exist yet. Only
/// then: `CREATE SCHEMA IF NOT EXISTS` needs the CREATE privilege on the database even when
/// the schema is there, which a role owning only its tables in `public` lacks.
async fn ensure_schema(pool: &PgPool) -> Result<(), StoreError> {
    let current = sqlx::query_scalar!("SELECT current_schema()")
        .fetch_one(pool)
        .await?;
    if current.is_none() {
        sqlx::query!(
            "DO $$ BEGIN
                 EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', current_setting('search_path'));
             END $$",
        )
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// True when every embedded migration has been applied, for readiness.
pub(crate) async fn schema_is_current(pool: &PgPool) -> Result<bool, StoreError> {
    Ok(applied_count(pool).await? >= MIGRATOR.iter().count())
}

async fn applied_count(pool: &PgPool) -> Result<usize, StoreError> {
    let exists = sqlx::query_scalar!(
        r#"SELECT to_regclass('partner_center_sync_migrations') IS NOT NULL AS "exists!""#
    )
    .fetch_one(pool)
    .await?;
    if !exists {
        return Ok(0);
    }
    let n = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM partner_center_sync_migrations WHERE success"#
    )
    .fetch_one(pool)
    .await?;
    Ok(usize::try_from(n).unwrap_or(0))
}
