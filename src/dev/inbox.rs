//! The demo's inbox: a webhook receiver on loopback, configured as the demo's one `json`
//! `[[notify]]` destination, so a new user sees notifications arrive without a Teams or
//! Slack webhook. It checks each message's signature as a receiver should and keeps the
//! latest in memory; the UI's Notifications tab shows them through
//! `GET /api/v1/demo/inbox`, which the demo adds to the daemon's own routes.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::{Destination, EventKind, Format};
use crate::notify::deliver::{
    DELIVERY_ID_HEADER, EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature,
};

/// The destination's name, as the Notifications tab and the logs show it.
const DESTINATION: &str = "demo-inbox";
/// Messages kept; older ones are dropped (the outbox in PostgreSQL keeps every delivery).
const KEEP: usize = 200;

/// One message as received.
#[derive(Clone, Debug, Serialize)]
struct Received {
    pub received_at: DateTime<Utc>,
    pub delivery_id: Option<String>,
    pub event: Option<String>,
    /// The `X-PCS-Signature` header matched the HMAC of `<timestamp>.<body>`.
    pub verified: bool,
    /// A delivery id seen before: an at-least-once retry a receiver should drop.
    pub duplicate: bool,
    /// The JSON body (a string when it was not JSON).
    pub body: Value,
}

#[derive(Clone)]
struct Shared {
    secret: SecretString,
    url: SecretString,
    messages: Arc<Mutex<VecDeque<Received>>>,
}

/// The running receiver; dropping it stops it.
pub struct Inbox {
    shared: Shared,
    task: JoinHandle<()>,
}

impl Inbox {
    /// Binds 127.0.0.1 on a free port and serves `POST /hook`.
    pub async fn start() -> std::io::Result<Inbox> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let shared = Shared {
            // Made afresh each run: it only has to match between the daemon and this inbox.
            secret: SecretString::from(uuid::Uuid::new_v4().simple().to_string()),
            url: SecretString::from(format!("http://{addr}/hook")),
            messages: Arc::default(),
        };
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "The demo inbox stopped.");
            }
        });
        Ok(Inbox { shared, task })
    }

    /// The `[[notify]]` destination that delivers here: the `json` format, every event.
    pub fn destination(&self) -> Destination {
        Destination {
            name: DESTINATION.to_owned(),
            format: Format::Json,
            url: self.shared.url.clone(),
            secret: Some(self.shared.secret.clone()),
            events: EventKind::ALL.to_vec(),
            directions: Vec::new(),
            types: Vec::new(),
            statuses: Vec::new(),
            min_deal_value: None,
        }
    }

    /// `GET /api/v1/demo/inbox`: `{"messages": [Received]}`, newest first. Not the
    /// receiver's URL: a webhook URL is a secret, the demo's too.
    pub fn routes(&self) -> Router {
        Router::new()
            .route("/api/v1/demo/inbox", get(list))
            .with_state(self.shared.clone())
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn list(State(shared): State<Shared>) -> Json<Value> {
    let messages: Vec<Received> = lock(&shared).iter().cloned().collect();
    Json(serde_json::json!({ "messages": messages }))
}

async fn receive(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let verified = match (header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER)) {
        (Some(timestamp), Some(sent)) => {
            signature(shared.secret.expose_secret(), &timestamp, &body) == sent
        }
        _ => false,
    };
    let delivery_id = header(DELIVERY_ID_HEADER);
    let event = header(EVENT_HEADER);
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    let mut messages = lock(&shared);
    let duplicate = delivery_id
        .as_ref()
        .is_some_and(|id| messages.iter().any(|m| m.delivery_id.as_ref() == Some(id)));
    tracing::info!(
        event = "demo_inbox_received",
        notification = event.as_deref().unwrap_or("unknown"),
        delivery_id = delivery_id.as_deref().unwrap_or("none"),
        verified,
        duplicate,
        "The demo inbox received a notification."
    );
    messages.push_front(Received {
        received_at: Utc::now(),
        delivery_id,
        event,
        verified,
        duplicate,
        body,
    });
    messages.truncate(KEEP);
    StatusCode::NO_CONTENT
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, VecDeque<Received>> {
    // A panic while holding it cannot leave the list half-changed: take it as it is.
    shared
        .messages
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
