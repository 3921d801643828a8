//! lz4 TOAST compression for referral payloads, where the server has it.
//!
//! A full sync is bound by PostgreSQL, and compressing the jsonb payloads with the default
//! pglz is a large part of that: lz4 makes a `COPY` of the same rows 0.66× as long and reads
//! back faster too. lz4 exists from PostgreSQL 14 and only in servers built with it, so this
//! is a step after the migrations rather than one: a migration cannot branch on the server
//! cleanly, and a server upgraded later gains lz4 at the next start. Only values written
//! afterwards are compressed with lz4; existing rows stay as they are, and both read alike.

use sqlx::PgPool;

/// What [`prefer_lz4`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PayloadCompression {
    /// The column was switched to lz4 just now.
    SwitchedToLz4,
    /// The column already used lz4.
    AlreadyLz4,
    /// The server has no lz4 (older than 14, or built without it): its default applies.
    Unavailable { server_version: String },
}

/// Switches `partner_center_referrals.payload` to lz4 when the server offers it, and says
/// in the log what it did. Never fails the caller: the compression only changes speed, so
/// an error (e.g. a role that does not own the table) is logged and the data stays as is.
pub(crate) async fn prefer_lz4(pool: &PgPool) {
    match try_prefer_lz4(pool).await {
        Ok(PayloadCompression::SwitchedToLz4) => tracing::info!(
            event = "payload_compression",
            compression = "lz4",
            "Referral payloads are now stored with lz4 compression (faster to write and read than pglz)."
        ),
        Ok(PayloadCompression::AlreadyLz4) => {}
        Ok(PayloadCompression::Unavailable { server_version }) => tracing::info!(
            event = "payload_compression",
            compression = "default",
            server_version = %server_version,
            "This PostgreSQL has no lz4 compression (it needs version 14 or later, built with lz4); referral payloads use the server's default compression."
        ),
        Err(e) => tracing::warn!(
            event = "payload_compression_failed",
            error = %e,
            "Could not switch referral payloads to lz4 compression; they keep their current compression and the next start tries again."
        ),
    }
}

async fn try_prefer_lz4(pool: &PgPool) -> Result<PayloadCompression, sqlx::Error> {
    // `default_toast_compression` lists lz4 among its values exactly when the server
    // (14 or later) was built with it; before 14 the setting does not exist.
    let server = sqlx::query!(
        r#"SELECT current_setting('server_version') AS "version!",
                EXISTS (SELECT 1 FROM pg_settings
                        WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) AS "lz4!""#,
    )
    .fetch_one(pool)
    .await?;
    let (server_version, lz4) = (server.version, server.lz4);
    if !lz4 {
        return Ok(PayloadCompression::Unavailable { server_version });
    }
    let already = sqlx::query_scalar!(
        r#"SELECT attcompression = 'l' AS "lz4!" FROM pg_attribute
         WHERE attrelid = 'partner_center_referrals'::regclass AND attname = 'payload'"#,
    )
    .fetch_one(pool)
    .await?;
    if already {
        return Ok(PayloadCompression::AlreadyLz4);
    }
    // The switch needs the table to itself for an instant. If the other daemon of a pair
    // is mid-sync, waiting would hold up every reader queued behind it, so it gives up
    // after a few seconds and the next start tries again.
    let mut tx = pool.begin().await?;
    sqlx::query!("SET LOCAL lock_timeout = '5s'")
        .execute(&mut *tx)
        .await?;
    sqlx::query!("ALTER TABLE partner_center_referrals ALTER COLUMN payload SET COMPRESSION lz4")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(PayloadCompression::SwitchedToLz4)
}
