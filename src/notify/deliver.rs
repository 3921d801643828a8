//! The delivery task: sends outbox rows at least once, in order per referral, with
//! backoff and jitter, never in the sync's way (its own task, its own connections).
//!
//! Each destination is drained one row at a time: claim (a lease in the database, so a
//! second process or a restart after SIGKILL picks the row up when the lease ends), POST,
//! then mark delivered or schedule the retry. A failing destination keeps its backlog and
//! is retried with growing delays; after `notify_unhealthy_after` failures in a row it is
//! reported unhealthy (`/healthz`, `/metrics`) and logged once at ERROR.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use secrecy::ExposeSecret;
use sha2::Sha256;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::message::{self, Event};
use crate::config::{Config, Destination, EventKind, Format};
use crate::metrics::Metrics;
use crate::store::notifications::{self, Due};
use crate::store::{StoreError, runs};

/// Header names of every delivery (all formats).
pub(crate) const DELIVERY_ID_HEADER: &str = "X-PCS-Delivery-Id";
pub(crate) const TIMESTAMP_HEADER: &str = "X-PCS-Timestamp";
pub(crate) const EVENT_HEADER: &str = "X-PCS-Event";
/// `sha256=<hex>`: HMAC-SHA256 over `<timestamp>.<body>` (json format only).
pub(crate) const SIGNATURE_HEADER: &str = "X-PCS-Signature";

/// How often the task looks for due rows.
const POLL: Duration = Duration::from_secs(1);
/// How often it checks whether the sync has gone stale (one indexed query).
const STALE_CHECK: Duration = Duration::from_secs(5);
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LONGEST_RETRY: Duration = Duration::from_secs(600);
/// Characters of a receiver's answer kept in `last_error`.
const ERROR_BODY_CHARS: usize = 200;

/// Runs until `stop`; `destinations` are fixed for the life of the task (a change needs
/// a restart), the rest of the configuration is read live.
pub(crate) async fn run(
    pool: PgPool,
    config: watch::Receiver<Arc<Config>>,
    metrics: Metrics,
    stop: CancellationToken,
) {
    let startup = config.borrow().clone();
    let destinations = startup.notify.clone();
    if destinations.is_empty() {
        return;
    }
    let http = match crate::outbound::http_client(&startup) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(event = "notify_client_failed", error = %e.without_url(), "Cannot build the HTTP client for notifications; none will be sent until a restart.");
            return;
        }
    };
    let started = Utc::now();
    let mut last_stale_check: Option<tokio::time::Instant> = None;
    tracing::info!(
        event = "notify_started",
        destinations = destinations.len(),
        "Notification delivery started."
    );
    loop {
        let config = config.borrow().clone();
        for d in &destinations {
            if let Err(e) = drain(&pool, &http, d, &config, &metrics, &stop).await {
                tracing::warn!(event = "notify_store_error", destination = %d.name, error = %e, "Could not read or update the notifications outbox; retrying.");
            }
        }
        if last_stale_check.is_none_or(|t| t.elapsed() >= STALE_CHECK) {
            last_stale_check = Some(tokio::time::Instant::now());
            if let Err(e) = check_stale(&pool, &config, started).await {
                tracing::debug!(event = "notify_stale_check_failed", error = %e, "Could not check for a stale sync.");
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Sends every due row of `d`, stopping at the first failure (the destination is likely
/// down; the next poll tries again once a retry is due).
async fn drain(
    pool: &PgPool,
    http: &reqwest::Client,
    d: &Destination,
    config: &Config,
    metrics: &Metrics,
    stop: &CancellationToken,
) -> Result<(), StoreError> {
    let lease = config.http_timeout + Duration::from_secs(5);
    while !stop.is_cancelled() {
        let Some(due) = notifications::claim(pool, &d.name, lease).await? else {
            return Ok(());
        };
        let labels = Metrics::destination(&d.name);
        match send(http, d, &due, config.public_url.as_deref()).await {
            Ok(()) => {
                notifications::mark_delivered(pool, &d.name, due.id).await?;
                metrics.notifications_delivered.get_or_create(&labels).inc();
                metrics.notifications_healthy.get_or_create(&labels).set(1);
                tracing::info!(event = "notification_delivered", destination = %d.name, kind = %due.event, delivery_id = %due.delivery_id, attempts = due.attempts, "Notification delivered.");
            }
            Err(error) => {
                let retry_in = backoff(due.attempts);
                let failures =
                    notifications::mark_failed(pool, &d.name, due.id, &error, retry_in).await?;
                metrics.notifications_failed.get_or_create(&labels).inc();
                let unhealthy =
                    failures >= i32::try_from(config.notify_unhealthy_after).unwrap_or(i32::MAX);
                metrics
                    .notifications_healthy
                    .get_or_create(&labels)
                    .set(i64::from(!unhealthy));
                if failures == i32::try_from(config.notify_unhealthy_after).unwrap_or(i32::MAX) {
                    tracing::error!(event = "notify_destination_unhealthy", destination = %d.name, failures, error = %error, "A notification destination keeps failing; its messages are kept and retried. Check the webhook and run `partner-center-sync notify test {}`.", d.name);
                } else {
                    tracing::warn!(event = "notification_failed", destination = %d.name, kind = %due.event, delivery_id = %due.delivery_id, attempts = due.attempts, retry_in_secs = retry_in.as_secs(), error = %error, "Notification delivery failed; it will be retried.");
                }
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Doubling from one second up to ten minutes, each wait drawn from its upper half so
/// that many daemons (or many rows) do not retry in step.
fn backoff(attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    let full = FIRST_RETRY.saturating_mul(1 << exp).min(LONGEST_RETRY);
    let half = full / 2;
    half + Duration::from_millis(
        rand::rng().random_range(0..=u64::try_from(half.as_millis()).unwrap_or(0)),
    )
}

/// One POST; the error names what went wrong but never the URL (it is the secret).
async fn send(
    http: &reqwest::Client,
    d: &Destination,
    due: &Due,
    public_url: Option<&str>,
) -> Result<(), String> {
    let event = Event {
        delivery_id: due.delivery_id,
        event: &due.event,
        created_at: due.created_at,
        data: &due.data,
    };
    let body = serde_json::to_vec(&message::render(d.format, &event, public_url))
        .map_err(|e| e.to_string())?;
    post(http, d, &due.delivery_id.to_string(), &due.event, body).await
}

/// POSTs `body` with the delivery headers (and the signature for `json`).
pub(crate) async fn post(
    http: &reqwest::Client,
    d: &Destination,
    delivery_id: &str,
    event: &str,
    body: Vec<u8>,
) -> Result<(), String> {
    let timestamp = Utc::now().timestamp().to_string();
    let mut request = http
        .post(d.url.expose_secret())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(DELIVERY_ID_HEADER, delivery_id)
        .header(TIMESTAMP_HEADER, &timestamp)
        .header(EVENT_HEADER, event);
    if let (Format::Json, Some(secret)) = (d.format, &d.secret) {
        request = request.header(
            SIGNATURE_HEADER,
            signature(secret.expose_secret(), &timestamp, &body),
        );
    }
    let response = request.body(body).send().await.map_err(|e| {
        let e = e.without_url();
        if e.is_timeout() {
            "the webhook did not answer in time (http_timeout)".to_owned()
        } else {
            format!("cannot reach the webhook: {e}")
        }
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    if status.is_redirection() {
        return Err(format!(
            "the webhook answered {status} (a redirect, not followed); use the final URL"
        ));
    }
    let text = response.text().await.unwrap_or_default();
    let shown: String = text.chars().take(ERROR_BODY_CHARS).collect();
    Err(format!("the webhook answered {status}: {}", shown.trim()))
}

/// `sha256=` and the hex HMAC-SHA256 of `<timestamp>.<body>` under `secret`.
pub(crate) fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// `sync_stale` once per stale spell: keyed by the last success it is measured from.
async fn check_stale(
    pool: &PgPool,
    config: &Config,
    started: chrono::DateTime<Utc>,
) -> Result<(), StoreError> {
    if !config.enabled {
        return Ok(());
    }
    let last = runs::last_success_at(pool).await?;
    let since = last.unwrap_or(started);
    let stale_after =
        chrono::Duration::from_std(config.notify_stale_after).unwrap_or(chrono::Duration::MAX);
    if Utc::now() - since < stale_after {
        return Ok(());
    }
    let key = format!(
        "sync_stale:{}",
        last.map_or_else(|| "never".to_owned(), |t| t.to_rfc3339())
    );
    let data = serde_json::json!({"last_success_at": last, "stale_after_seconds": config.notify_stale_after.as_secs()});
    super::enqueue::operator(pool, &config.notify, EventKind::SyncStale, &key, data).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_stops_at_ten_minutes() {
        for (attempts, full) in [(1, 1), (2, 2), (4, 8), (30, 600)] {
            let d = backoff(attempts);
            assert!(
                d >= Duration::from_secs(full) / 2 && d <= Duration::from_secs(full),
                "{attempts}: {d:?}"
            );
        }
    }

    #[test]
    fn the_signature_is_the_hmac_of_timestamp_dot_body() {
        // RFC 4231 test case 2 key and data, split as "<timestamp>.<body>".
        assert_eq!(
            signature("Jefe", "what do ya want for nothing?", b"").len(),
            "sha256=".len() + 64
        );
        let a = signature("k", "1", b"{}");
        assert_eq!(a, signature("k", "1", b"{}"));
        assert_ne!(a, signature("k", "2", b"{}"));
        assert_ne!(a, signature("other", "1", b"{}"));
    }
}
