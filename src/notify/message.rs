//! What a message says, and how each format wraps it.
//!
//! An outbox row's `data` becomes one [`Message`] (a title, a line of text, facts and a
//! link), rendered as a Teams Adaptive Card, Slack blocks, or our JSON. Only the JSON
//! format carries the raw event data; chat formats carry what a salesperson reads.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use url::Url;
use uuid::Uuid;

use crate::config::Format;

/// Version of the JSON format's schema (README, Notifications).
const JSON_VERSION: u32 = 1;
/// Chat messages list this many digest items; the JSON format carries all it was given.
const DIGEST_LINES: usize = 10;

/// One outbox row, as the renderer needs it.
#[derive(Clone, Debug)]
pub(crate) struct Event<'a> {
    pub delivery_id: Uuid,
    pub event: &'a str,
    pub created_at: DateTime<Utc>,
    pub data: &'a Value,
}

/// A message before its format.
#[derive(Clone, Debug, Default, PartialEq)]
struct Message {
    pub title: String,
    pub text: Option<String>,
    pub facts: Vec<(String, String)>,
    pub lines: Vec<String>,
    pub link: Option<String>,
}

/// The body to POST for `event` in `format`; `public_url` makes the links.
pub(crate) fn render(format: Format, event: &Event<'_>, public_url: Option<&str>) -> Value {
    match format {
        Format::Json => json_body(event, public_url),
        Format::Teams => teams(&compose(event, public_url)),
        Format::Slack => slack(&compose(event, public_url)),
    }
}

/// The link to a referral in this daemon's web UI.
fn referral_link(public_url: Option<&str>, id: &str) -> Option<String> {
    let mut url = Url::parse(public_url?).ok()?;
    url.query_pairs_mut().clear().append_pair("referral", id);
    Some(url.to_string())
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn status_of(status: Option<String>, substatus: Option<String>) -> String {
    match (status, substatus) {
        (Some(s), Some(sub)) => format!("{s} / {sub}"),
        (Some(s), None) => s,
        (None, Some(sub)) => sub,
        (None, None) => "unknown".into(),
    }
}

fn value_of(r: &Value) -> String {
    match (text(r, "deal_value"), text(r, "currency")) {
        (Some(v), Some(c)) => format!("{v} {c}"),
        (Some(v), None) => v,
        _ => "not given".into(),
    }
}

fn referral_name(r: &Value) -> String {
    text(r, "name").unwrap_or_else(|| text(r, "id").unwrap_or_default())
}

/// Facts every referral message carries.
fn referral_facts(r: &Value) -> Vec<(String, String)> {
    let mut facts = vec![
        (
            "Customer".to_owned(),
            text(r, "customer_name").unwrap_or_else(|| "unknown".into()),
        ),
        ("Deal".to_owned(), referral_name(r)),
        ("Value".to_owned(), value_of(r)),
        (
            "Status".to_owned(),
            status_of(text(r, "status"), text(r, "substatus")),
        ),
    ];
    if let Some(expires) = text(r, "expires_at") {
        facts.push(("Expires".to_owned(), expires));
    }
    facts
}

/// Title, text and facts of an event.
fn compose(event: &Event<'_>, public_url: Option<&str>) -> Message {
    let data = event.data;
    let referral = data.get("referral");
    let link_to = |r: &Value| text(r, "id").and_then(|id| referral_link(public_url, &id));
    match (event.event, referral) {
        ("digest", _) => {
            let count = data.get("count").and_then(Value::as_u64).unwrap_or(0);
            let items = data
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut lines: Vec<String> = items
                .iter()
                .take(DIGEST_LINES)
                .filter_map(|i| i.get("referral"))
                .map(|r| {
                    format!(
                        "{} — {} ({}, {})",
                        referral_name(r),
                        text(r, "customer_name").unwrap_or_default(),
                        status_of(text(r, "status"), text(r, "substatus")),
                        value_of(r)
                    )
                })
                .collect();
            if count as usize > lines.len() {
                lines.push(format!("…and {} more", count as usize - lines.len()));
            }
            let facts = data
                .get("events")
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.to_string())).collect())
                .unwrap_or_default();
            Message {
                title: format!("{count} referral updates in one sync"),
                text: Some("Too many to send one by one; here they are together.".into()),
                facts,
                lines,
                link: public_url.map(str::to_owned),
            }
        }
        ("import_summary", _) => {
            let n = data.get("imported").and_then(Value::as_u64).unwrap_or(0);
            Message {
                title: format!("{n} referrals imported"),
                text: Some("The first sync filled an empty table; new referrals will be announced one by one from now on.".into()),
                link: public_url.map(str::to_owned),
                ..Message::default()
            }
        }
        ("sign_in_required", _) => Message {
            title: "Partner Center sign-in required".into(),
            text: Some(format!(
                "Syncing has stopped: {}. Run `partner-center-sync login` on the server.",
                text(data, "reason").unwrap_or_else(|| "the saved sign-in no longer works".into())
            )),
            link: public_url.map(str::to_owned),
            ..Message::default()
        },
        ("sync_stale", _) => Message {
            title: "Partner Center sync is stale".into(),
            text: Some(match text(data, "last_success_at") {
                Some(at) => format!(
                    "No successful sync since {at}; check the daemon's health page and log."
                ),
                None => "No sync has succeeded yet; check the daemon's health page and log.".into(),
            }),
            link: public_url.map(str::to_owned),
            ..Message::default()
        },
        (kind, Some(r)) => {
            let (title, text_line) = match kind {
                "referral_new" => (format!("New referral: {}", referral_name(r)), None),
                "referral_status_changed" => {
                    let c = data.get("change").cloned().unwrap_or(Value::Null);
                    (
                        format!("Referral status changed: {}", referral_name(r)),
                        Some(format!(
                            "{} → {}",
                            status_of(text(&c, "old_status"), text(&c, "old_substatus")),
                            status_of(text(&c, "new_status"), text(&c, "new_substatus"))
                        )),
                    )
                }
                "referral_expiring" => (
                    format!("Referral expiring soon: {}", referral_name(r)),
                    Some("Accept or decline it before it expires.".into()),
                ),
                "referral_missing" => (
                    format!("Referral no longer listed: {}", referral_name(r)),
                    Some("Partner Center stopped returning it; it is kept here as missing.".into()),
                ),
                other => (format!("{other}: {}", referral_name(r)), None),
            };
            Message {
                title,
                text: text_line,
                facts: referral_facts(r),
                lines: Vec::new(),
                link: link_to(r),
            }
        }
        (other, None) => Message {
            title: other.to_owned(),
            ..Message::default()
        },
    }
}

/// Our JSON: the event's data at the top level, each referral with its UI link.
fn json_body(event: &Event<'_>, public_url: Option<&str>) -> Value {
    let mut data = event.data.clone();
    let add_url = |r: &mut Value| {
        let link = text(r, "id").and_then(|id| referral_link(public_url, &id));
        if let Some(obj) = r.as_object_mut() {
            obj.insert("url".into(), link.map_or(Value::Null, Value::String));
        }
    };
    if let Some(r) = data.get_mut("referral") {
        add_url(r);
    }
    if let Some(items) = data.get_mut("items").and_then(Value::as_array_mut) {
        for r in items.iter_mut().filter_map(|i| i.get_mut("referral")) {
            add_url(r);
        }
    }
    let mut body = json!({
        "version": JSON_VERSION,
        "delivery_id": event.delivery_id,
        "event": event.event,
        "created_at": event.created_at,
    });
    if let (Some(obj), Value::Object(more)) = (body.as_object_mut(), data) {
        obj.extend(more);
    }
    body
}

/// An Adaptive Card (schema 1.4) in the envelope a Teams Workflows webhook takes.
fn teams(m: &Message) -> Value {
    let mut body = vec![
        json!({"type": "TextBlock", "text": m.title, "weight": "Bolder", "size": "Medium", "wrap": true}),
    ];
    if let Some(t) = &m.text {
        body.push(json!({"type": "TextBlock", "text": t, "wrap": true}));
    }
    if !m.facts.is_empty() {
        let facts: Vec<Value> = m
            .facts
            .iter()
            .map(|(k, v)| json!({"title": k, "value": v}))
            .collect();
        body.push(json!({"type": "FactSet", "facts": facts}));
    }
    for line in &m.lines {
        body.push(json!({"type": "TextBlock", "text": format!("- {line}"), "wrap": true, "spacing": "None"}));
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    });
    if let Some(link) = &m.link {
        card["actions"] = json!([{"type": "Action.OpenUrl", "title": "Open in partner-center-sync", "url": link}]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

/// Slack's mrkdwn treats these three as markup.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Cuts `s` to Slack's limit for a field, on a character boundary.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

/// Block Kit for a Slack incoming webhook; `text` is the notification fallback.
fn slack(m: &Message) -> Value {
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": cut(&m.title, 150), "emoji": true}}),
    ];
    if let Some(t) = &m.text {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(&slack_escape(t), 3000)}}));
    }
    if !m.facts.is_empty() {
        let fields: Vec<Value> = m
            .facts
            .iter()
            .take(10)
            .map(|(k, v)| json!({"type": "mrkdwn", "text": cut(&format!("*{}*\n{}", slack_escape(k), slack_escape(v)), 2000)}))
            .collect();
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    if !m.lines.is_empty() {
        let list: Vec<String> = m
            .lines
            .iter()
            .map(|l| format!("• {}", slack_escape(l)))
            .collect();
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(&list.join("\n"), 3000)}}));
    }
    if let Some(link) = &m.link {
        blocks.push(json!({"type": "actions", "elements": [{
            "type": "button",
            "text": {"type": "plain_text", "text": "Open in partner-center-sync"},
            "url": link,
        }]}));
    }
    json!({"text": cut(&m.title, 3000), "blocks": blocks})
}

/// One sample event of each kind, for `partner-center-sync notify test`.
pub(crate) fn samples() -> Vec<(&'static str, Value)> {
    let referral = json!({
        "id": "sample-0000-referral", "name": "Contoso cloud migration (sample)",
        "customer_name": "Contoso Ltd", "deal_value": "125000.00", "currency": "USD",
        "status": "New", "substatus": "Pending", "direction": "Incoming", "type": "Shared",
        "expires_at": "2030-01-31T00:00:00Z",
    });
    // After the move, as a real `referral_status_changed` carries it.
    let mut moved = referral.clone();
    moved["status"] = json!("Active");
    moved["substatus"] = json!("Accepted");
    vec![
        ("referral_new", json!({"referral": referral})),
        (
            "referral_status_changed",
            json!({"referral": moved, "change": {
            "old_status": "New", "old_substatus": "Pending", "new_status": "Active", "new_substatus": "Accepted"}}),
        ),
        (
            "referral_expiring",
            json!({"referral": referral, "window_seconds": 259_200}),
        ),
        ("referral_missing", json!({"referral": referral})),
        (
            "sign_in_required",
            json!({"reason": "sample: the refresh token was revoked",
                "last_success_at": "2030-01-01T00:00:00Z"}),
        ),
        (
            "sync_stale",
            json!({"last_success_at": "2030-01-01T00:00:00Z", "stale_after_seconds": 3600}),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event<'a>(kind: &'a str, data: &'a Value) -> Event<'a> {
        Event {
            delivery_id: Uuid::nil(),
            event: kind,
            created_at: DateTime::UNIX_EPOCH,
            data,
        }
    }

    #[test]
    fn a_status_change_shows_old_and_new_and_links_to_the_referral() {
        let (_, data) = samples().swap_remove(1);
        let m = compose(
            &event("referral_status_changed", &data),
            Some("https://sync.example/"),
        );
        assert_eq!(m.text.as_deref(), Some("New / Pending → Active / Accepted"));
        assert_eq!(
            m.link.as_deref(),
            Some("https://sync.example/?referral=sample-0000-referral")
        );
        assert!(m.facts.contains(&("Value".into(), "125000.00 USD".into())));
    }

    #[test]
    fn slack_text_is_escaped_and_cut_to_its_limits() {
        let m = Message {
            title: "x".repeat(200),
            text: Some("<b>&".into()),
            ..Message::default()
        };
        let v = slack(&m);
        assert_eq!(
            v["blocks"][0]["text"]["text"]
                .as_str()
                .map(|s| s.chars().count()),
            Some(150)
        );
        assert_eq!(v["blocks"][1]["text"]["text"], "&lt;b&gt;&amp;");
    }

    #[test]
    fn json_adds_the_link_and_keeps_the_data() {
        let (_, data) = samples().swap_remove(0);
        let v = json_body(&event("referral_new", &data), None);
        assert_eq!(v["version"], 1);
        assert_eq!(v["referral"]["url"], Value::Null);
        assert_eq!(v["referral"]["deal_value"], "125000.00");
    }
}
