//! `GET /api/v1/partner-center/referrals.csv`: every referral matching the list's filters
//! (and its `sort`, `order`) as a CSV download, in the format `crate::export` describes.
//!
//! The rows are streamed, not gathered: one query's rows go through the CSV writer in
//! chunks and out to the client as they come, through a channel of a few chunks. A slow
//! client slows the query instead of filling memory, so an export of 100,000 referrals
//! costs the daemon no more than one of ten (`benches/export.rs` measures it).
//!
//! Once the first byte is sent the status is 200, so a failure mid-way aborts the
//! response: the client sees a broken download, never a file silently cut short.

use std::io;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{StreamExt, TryStreamExt};
use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use tokio::sync::mpsc;

use super::AppState;
use super::error::ApiError;
use super::openapi::{FilterQuery, SortQuery};
use super::params::{FILTER_PARAMS, Params, SORT_PARAMS};
use super::present::ReferralView;
use crate::export::{CHUNK, CsvChunks};
use crate::store::read::Matching;

/// Chunks in flight between the query and the client.
const IN_FLIGHT: usize = 4;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/v1/partner-center/referrals.csv", get(referrals_csv))
}

/// Every matching referral as CSV, streamed.
#[utoipa::path(get, path = "/api/v1/partner-center/referrals.csv", tag = "referrals",
    params(FilterQuery, SortQuery), security((), ("api_token" = [])),
    responses((status = 200, description = "The CSV download", content_type = "text/csv; charset=utf-8", body = String)))]
pub(super) async fn referrals_csv(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let known = [FILTER_PARAMS, SORT_PARAMS].concat();
    let p = Params::parse(raw, &known)?;
    let query = Matching::new(&p.referral_filter()?, p.sort()?, p.order()?);
    // Taken before answering, so an unreachable database is a 500, not a broken download.
    let conn = state.pool.acquire().await?;
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    tokio::spawn(stream_csv(conn, query, tx));
    // Fused: the gzip encoder polls once more after the end, which `unfold` forbids.
    let chunks = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    })
    .fuse();
    let filename = format!(
        "attachment; filename=\"referrals-{}.csv\"",
        chrono::Utc::now().format("%Y-%m-%d")
    );
    Ok((
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (CONTENT_DISPOSITION, filename),
            (CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}

/// How the streaming ended.
enum Ended {
    Complete {
        rows: u64,
    },
    /// The client stopped reading (closed the tab, cancelled the download).
    Abandoned {
        rows: u64,
    },
}

async fn stream_csv(
    mut conn: PoolConnection<Postgres>,
    mut query: Matching,
    tx: mpsc::Sender<io::Result<Bytes>>,
) {
    let outcome = write_rows(&mut conn, &mut query, &tx).await;
    match outcome {
        Ok(Ended::Complete { rows }) => {
            tracing::info!(event = "csv_export_finished", rows, "Sent a CSV export.");
        }
        Ok(Ended::Abandoned { rows }) => {
            // The rest of the result would be read and thrown away before the connection
            // could serve anyone else; closing it is cheaper.
            conn.close_on_drop();
            tracing::info!(
                event = "csv_export_abandoned",
                rows,
                "The client stopped reading a CSV export; it was cut short."
            );
        }
        Err(e) => {
            conn.close_on_drop();
            tracing::error!(
                event = "csv_export_failed",
                error = format!("{e:#}"),
                "A CSV export failed mid-way; the download was aborted."
            );
            let _ = tx
                .send(Err(io::Error::other(
                    "the export failed; see the daemon's log",
                )))
                .await;
        }
    }
}

async fn write_rows(
    conn: &mut PoolConnection<Postgres>,
    query: &mut Matching,
    tx: &mpsc::Sender<io::Result<Bytes>>,
) -> anyhow::Result<Ended> {
    let mut csv = CsvChunks::new()?;
    let mut rows = query.rows(conn);
    let mut count = 0u64;
    while let Some(row) = rows.try_next().await? {
        csv.push(&ReferralView::new(row.referral, &row.payload))?;
        count += 1;
        if csv.len() >= CHUNK && tx.send(Ok(Bytes::from(csv.take()?))).await.is_err() {
            return Ok(Ended::Abandoned { rows: count });
        }
    }
    if tx.send(Ok(Bytes::from(csv.take()?))).await.is_err() {
        return Ok(Ended::Abandoned { rows: count });
    }
    Ok(Ended::Complete { rows: count })
}
