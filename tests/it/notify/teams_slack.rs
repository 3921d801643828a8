//! Teams and Slack payloads parsed as those services do: the documented shapes, closed to
//! unknown fields, with their size limits. Teams: an Adaptive Card (schema
//! http://adaptivecards.io/schemas/adaptive-card.json, versions up to 1.5, the elements
//! and actions Teams renders) in the message envelope of a Workflows webhook. Slack:
//! Block Kit (https://api.slack.com/reference/block-kit/blocks) as an incoming webhook
//! takes it: at most 50 blocks, header text at most 150 characters, section text 3000,
//! at most 10 fields of 2000, button text 75, URLs 3000.

use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamsEnvelope {
    #[serde(rename = "type")]
    kind: String,
    attachments: Vec<TeamsAttachment>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TeamsAttachment {
    content_type: String,
    content_url: Option<String>,
    content: AdaptiveCard,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdaptiveCard {
    #[serde(rename = "$schema")]
    schema: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    version: String,
    body: Vec<Element>,
    #[serde(default)]
    actions: Vec<CardAction>,
}

/// Every field is parsed to check it against the documented values; only some are read.
#[derive(Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
#[allow(dead_code)]
enum Element {
    TextBlock {
        text: String,
        weight: Option<Weight>,
        size: Option<Size>,
        wrap: Option<bool>,
        spacing: Option<Spacing>,
    },
    FactSet {
        facts: Vec<Fact>,
    },
}

#[derive(Deserialize)]
enum Weight {
    Default,
    Lighter,
    Bolder,
}

#[derive(Deserialize)]
enum Size {
    Default,
    Small,
    Medium,
    Large,
    ExtraLarge,
}

#[derive(Deserialize)]
enum Spacing {
    None,
    Small,
    Default,
    Medium,
    Large,
    ExtraLarge,
    Padding,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fact {
    title: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
enum CardAction {
    #[serde(rename = "Action.OpenUrl")]
    OpenUrl { title: Option<String>, url: String },
}

/// Panics unless `body` is a card a Teams Workflows webhook posts.
pub fn check_teams(body: &Value) {
    let envelope: TeamsEnvelope = serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("not a Teams webhook message: {e}\n{body:#}"));
    assert_eq!(envelope.kind, "message");
    assert_eq!(envelope.attachments.len(), 1, "{body:#}");
    let a = &envelope.attachments[0];
    assert_eq!(a.content_type, "application/vnd.microsoft.card.adaptive");
    assert!(a.content_url.is_none());
    let card = &a.content;
    assert_eq!(card.kind, "AdaptiveCard");
    assert!(card.schema.as_deref() == Some("http://adaptivecards.io/schemas/adaptive-card.json"));
    let minor: u32 = card
        .version
        .strip_prefix("1.")
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("version {}", card.version));
    assert!(minor <= 5, "Teams renders Adaptive Cards up to 1.5");
    assert!(!card.body.is_empty());
    for e in &card.body {
        match e {
            Element::TextBlock { text, .. } => assert!(!text.is_empty()),
            Element::FactSet { facts } => {
                assert!(
                    facts
                        .iter()
                        .all(|f| !f.title.is_empty() && !f.value.is_empty())
                )
            }
        }
    }
    for CardAction::OpenUrl { title, url } in &card.actions {
        assert!(title.as_deref().is_some_and(|t| !t.is_empty()));
        let u = url::Url::parse(url).expect("an absolute URL");
        assert!(matches!(u.scheme(), "https" | "http"));
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlackMessage {
    text: String,
    blocks: Vec<Block>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Block {
    Header {
        text: TextObject,
    },
    Section {
        text: Option<TextObject>,
        fields: Option<Vec<TextObject>>,
    },
    Actions {
        elements: Vec<Button>,
    },
}

/// Every field is parsed to check its type; only `text` is read.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[allow(dead_code)]
enum TextObject {
    PlainText {
        text: String,
        emoji: Option<bool>,
    },
    Mrkdwn {
        text: String,
        verbatim: Option<bool>,
    },
}

impl TextObject {
    fn text(&self) -> &str {
        match self {
            TextObject::PlainText { text, .. } | TextObject::Mrkdwn { text, .. } => text,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Button {
    #[serde(rename = "type")]
    kind: String,
    text: TextObject,
    url: Option<String>,
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// Panics unless `body` is a message a Slack incoming webhook accepts.
pub fn check_slack(body: &Value) {
    let m: SlackMessage = serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("not Slack Block Kit: {e}\n{body:#}"));
    assert!(!m.text.is_empty() && chars(&m.text) <= 3000);
    assert!(!m.blocks.is_empty() && m.blocks.len() <= 50);
    for b in &m.blocks {
        match b {
            Block::Header { text } => {
                assert!(
                    matches!(text, TextObject::PlainText { .. }),
                    "a header is plain_text"
                );
                assert!(chars(text.text()) <= 150);
            }
            Block::Section { text, fields } => {
                assert!(
                    text.is_some() || fields.is_some(),
                    "a section needs text or fields"
                );
                if let Some(t) = text {
                    assert!(!t.text().is_empty() && chars(t.text()) <= 3000);
                }
                if let Some(f) = fields {
                    assert!(f.len() <= 10);
                    assert!(f.iter().all(|t| chars(t.text()) <= 2000));
                }
            }
            Block::Actions { elements } => {
                assert!(!elements.is_empty() && elements.len() <= 25);
                for button in elements {
                    assert_eq!(button.kind, "button");
                    assert!(matches!(button.text, TextObject::PlainText { .. }));
                    assert!(chars(button.text.text()) <= 75);
                    let url = button.url.as_deref().expect("a link button");
                    assert!(chars(url) <= 3000 && url::Url::parse(url).is_ok());
                }
            }
        }
    }
}
