//! `partner-center-sync notify test NAME`: one sample of each event, in the destination's
//! format, sent straight away (not through the outbox), so an operator sees at once
//! whether the webhook takes them and how they look.

use uuid::Uuid;

use super::deliver;
use super::message::{self, Event};
use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub(crate) enum TestSendError {
    #[error(
        "No [[notify]] destination is named `{name}`; configured: {known}. Check `name` in the [[notify]] tables."
    )]
    UnknownDestination { name: String, known: String },
    #[error("Cannot build the HTTP client: {0}")]
    Client(String),
    #[error("{failed} of {total} samples were refused by `{name}`: {first_error}")]
    Refused {
        name: String,
        failed: usize,
        total: usize,
        first_error: String,
        /// What each sample got back, as on success.
        lines: Vec<String>,
    },
}

/// Sends the samples; the lines say what each got back.
pub(crate) async fn run(config: &Config, name: &str) -> Result<Vec<String>, TestSendError> {
    let Some(d) = config.notify.iter().find(|d| d.name == name) else {
        let known: Vec<&str> = config.notify.iter().map(|d| d.name.as_str()).collect();
        return Err(TestSendError::UnknownDestination {
            name: name.to_owned(),
            known: if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            },
        });
    };
    let http = crate::outbound::http_client(config)
        .map_err(|e| TestSendError::Client(e.without_url().to_string()))?;
    let samples = message::samples();
    let total = samples.len();
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    for (kind, data) in &samples {
        let delivery_id = Uuid::new_v4();
        let event = Event {
            delivery_id,
            event: kind,
            created_at: chrono::Utc::now(),
            data,
        };
        let body = message::render(d.format, &event, config.public_url.as_deref());
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        match deliver::post(&http, d, &delivery_id.to_string(), kind, bytes).await {
            Ok(()) => lines.push(format!("{kind}: delivered ({})", d.format.as_str())),
            Err(e) => {
                lines.push(format!("{kind}: failed: {e}"));
                errors.push(e);
            }
        }
    }
    match errors.first() {
        None => Ok(lines),
        Some(first) => Err(TestSendError::Refused {
            name: name.to_owned(),
            failed: errors.len(),
            total,
            first_error: first.clone(),
            lines,
        }),
    }
}
