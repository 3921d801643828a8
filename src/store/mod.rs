//! PostgreSQL: the pool, the embedded migrations, and the queries of each concern.

pub mod companies;
pub mod compression;
pub mod filter;
pub mod history;
pub mod lock;
pub mod notifications;
pub mod pipeline;
pub mod read;
pub mod referrals;
pub mod runs;
pub mod state;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The schema, embedded so the binary carries its own migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

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
    #[error("Database query failed: {0}")]
    Query(#[from] sqlx::Error),
}

/// How long the pool keeps a connection nobody uses. Runs are minutes apart (600 s in
/// production), so between them an idle daemon holds no server backend and no buffers.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Connects lazily-checked: the first connection is made now so a bad URL fails at start-up.
pub async fn connect(url: &SecretString) -> Result<PgPool, StoreError> {
    let options: PgConnectOptions = url.expose_secret().parse().map_err(StoreError::BadUrl)?;
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

/// Applies pending migrations (a no-op when the schema is current), then prefers lz4 for
/// the referral payloads where the server has it.
pub async fn migrate(pool: &PgPool) -> Result<usize, StoreError> {
    let before = applied_count(pool).await.unwrap_or(0);
    MIGRATOR.run(pool).await?;
    compression::prefer_lz4(pool).await;
    Ok(applied_count(pool).await?.saturating_sub(before))
}

/// True when every embedded migration has been applied, for readiness.
pub async fn schema_is_current(pool: &PgPool) -> Result<bool, StoreError> {
    Ok(applied_count(pool).await? >= MIGRATOR.iter().count())
}

async fn applied_count(pool: &PgPool) -> Result<usize, StoreError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(0);
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await?;
    Ok(usize::try_from(n).unwrap_or(0))
}
