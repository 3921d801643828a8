//! One sync at a time across processes and hosts: a PostgreSQL session advisory lock.
//!
//! The lock lives on a connection of its own, outside the pool: a pooled connection goes
//! back to the pool and may be reused or closed at any time, which would hand the lock to
//! an unrelated query or drop it mid-run. If this process dies, PostgreSQL ends the
//! session and the lock is free again, so a crash never leaves the sync locked.

use sqlx::{Connection, PgConnection, PgPool};

use super::StoreError;

/// Arbitrary but fixed: every process of every version must use the same key.
/// ASCII "pcsync" packed into an i64.
const SYNC_LOCK_KEY: i64 = 0x7063_7379_6e63;

/// Held while a run is in progress; dropping it closes the connection, which releases it.
pub struct SyncLock {
    conn: PgConnection,
}

/// Tries once and never waits: `None` when another process holds the lock.
pub async fn try_acquire(pool: &PgPool) -> Result<Option<SyncLock>, StoreError> {
    let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
    let got = sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_lock($1) AS "got!""#,
        SYNC_LOCK_KEY
    )
    .fetch_one(&mut conn)
    .await?;
    if got {
        Ok(Some(SyncLock { conn }))
    } else {
        conn.close().await?;
        Ok(None)
    }
}

impl SyncLock {
    /// Releases at once rather than when the server notices the closed socket.
    pub async fn release(mut self) -> Result<(), StoreError> {
        sqlx::query_scalar!("SELECT pg_advisory_unlock($1)", SYNC_LOCK_KEY)
            .fetch_one(&mut self.conn)
            .await?;
        self.conn.close().await?;
        Ok(())
    }
}
