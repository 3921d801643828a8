//! `[[notify]]`: the notification destinations, an array of tables in the TOML file.
//!
//! The flat key table (`keys.rs`) cannot hold a list of tables, so destinations are read
//! here, from the same file, with the same problem reporting: each problem names
//! `notify[N].field` and says how to fix it. A webhook URL is a secret (it lets anyone
//! post into the channel): it never sits in the file but in a credential file
//! (`url_file`, relative to systemd's `$CREDENTIALS_DIRECTORY` when set) or an
//! environment variable (`url_env`), and is never shown. The HMAC secret of the `json`
//! format comes the same way (`secret_file` / `secret_env`).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::{Problem, Source};

/// The file key of the destinations' array of tables.
pub(super) const TABLE: &str = "notify";

/// How a destination wants its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// An Adaptive Card, as a Teams "Workflows" incoming webhook takes it.
    Teams,
    /// Block Kit, as a Slack incoming webhook takes it.
    Slack,
    /// Our own documented JSON, signed with HMAC-SHA256.
    Json,
}

impl Format {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Teams => "teams",
            Self::Slack => "slack",
            Self::Json => "json",
        }
    }
}

/// The events a destination may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    ReferralNew,
    ReferralStatusChanged,
    ReferralExpiring,
    ReferralMissing,
    SignInRequired,
    SyncStale,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        Self::ReferralNew,
        Self::ReferralStatusChanged,
        Self::ReferralExpiring,
        Self::ReferralMissing,
        Self::SignInRequired,
        Self::SyncStale,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::ReferralNew => "referral_new",
            Self::ReferralStatusChanged => "referral_status_changed",
            Self::ReferralExpiring => "referral_expiring",
            Self::ReferralMissing => "referral_missing",
            Self::SignInRequired => "sign_in_required",
            Self::SyncStale => "sync_stale",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// One `[[notify]]` table, validated.
#[derive(Clone, Debug)]
pub struct Destination {
    pub name: String,
    pub format: Format,
    pub url: SecretString,
    /// The HMAC-SHA256 key of the `json` format.
    pub secret: Option<SecretString>,
    /// The events wanted, in [`EventKind::ALL`] order.
    pub events: Vec<EventKind>,
    /// Referral filters; an empty list lets everything through.
    pub directions: Vec<String>,
    pub types: Vec<String>,
    pub statuses: Vec<String>,
    /// Referrals below this deal value (or without one) are dropped.
    pub min_deal_value: Option<f64>,
}

impl Destination {
    pub(crate) fn wants(&self, event: EventKind) -> bool {
        self.events.contains(&event)
    }

    /// Same settings, secrets compared by value (for reload).
    pub(crate) fn same_as(&self, other: &Destination) -> bool {
        let secret = |d: &Destination| d.secret.as_ref().map(|s| s.expose_secret().to_owned());
        self.name == other.name
            && self.format == other.format
            && self.url.expose_secret() == other.url.expose_secret()
            && secret(self) == secret(other)
            && self.events == other.events
            && self.directions == other.directions
            && self.types == other.types
            && self.statuses == other.statuses
            && self.min_deal_value == other.min_deal_value
    }

    /// `config show`: every setting but the secrets, which only say where they come from.
    pub(crate) fn display_lines(&self, index: usize) -> Vec<(String, String)> {
        let list = |v: &[String]| format!("{v:?}");
        let events: Vec<String> = self.events.iter().map(|e| e.as_str().to_owned()).collect();
        let mut lines = vec![
            ("name", format!("{:?}", self.name)),
            ("format", format!("{:?}", self.format.as_str())),
            ("url", "\"[redacted]\"".to_owned()),
            (
                "secret",
                if self.secret.is_some() {
                    "\"[redacted]\""
                } else {
                    "(unset)"
                }
                .to_owned(),
            ),
            ("events", list(&events)),
            ("directions", list(&self.directions)),
            ("types", list(&self.types)),
            ("statuses", list(&self.statuses)),
        ];
        if let Some(v) = self.min_deal_value {
            lines.push(("min_deal_value", v.to_string()));
        }
        lines
            .into_iter()
            .map(|(k, v)| (format!("notify[{index}].{k}"), v))
            .collect()
    }
}

/// A `[[notify]]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: String,
    format: String,
    url_file: Option<PathBuf>,
    url_env: Option<String>,
    secret_file: Option<PathBuf>,
    secret_env: Option<String>,
    #[serde(default)]
    events: Option<Vec<String>>,
    #[serde(default)]
    directions: Vec<String>,
    #[serde(default)]
    types: Vec<String>,
    #[serde(default)]
    statuses: Vec<String>,
    min_deal_value: Option<f64>,
}

/// What reading a secret needs from outside.
pub(super) struct Env<'a> {
    pub vars: &'a HashMap<String, String>,
    pub credentials_dir: Option<&'a Path>,
    pub file: Option<&'a Path>,
}

/// Reads every `[[notify]]` table; problems are added to `problems`, valid tables returned.
pub(super) fn read(
    figment: &Figment,
    env: &Env<'_>,
    problems: &mut Vec<Problem>,
) -> Vec<Destination> {
    let source = || Source::File(env.file.map(Path::to_path_buf).unwrap_or_default());
    let Ok(value) = figment.find_value(TABLE) else {
        return Vec::new();
    };
    let raws: Vec<Raw> = match value.deserialize() {
        Ok(r) => r,
        Err(e) => {
            problems.push(Problem::new(
                "notify",
                source(),
                format!("is not a list of [[notify]] tables: {e}"),
                "write each destination as a [[notify]] table with name, format and url_file or url_env (see the README, Notifications)",
            ));
            return Vec::new();
        }
    };
    let mut names = BTreeSet::new();
    let mut out = Vec::new();
    for (i, raw) in raws.into_iter().enumerate() {
        let mut p = |field: &str, message: String, fix: &str| {
            problems.push(Problem::new(
                &format!("notify[{i}].{field}"),
                source(),
                message,
                fix,
            ));
        };
        let name = raw.name.trim().to_owned();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            p(
                "name",
                format!("`{name}` is not a destination name"),
                "use letters, digits, - and _ (e.g. sales-teams)",
            );
        } else if !names.insert(name.clone()) {
            p(
                "name",
                format!("`{name}` names two destinations"),
                "give each [[notify]] table its own name",
            );
        }
        let format = match raw.format.as_str() {
            "teams" => Some(Format::Teams),
            "slack" => Some(Format::Slack),
            "json" => Some(Format::Json),
            other => {
                p(
                    "format",
                    format!("`{other}` is not a format"),
                    "use teams, slack or json",
                );
                None
            }
        };
        let url = secret(
            env,
            raw.url_file.as_deref(),
            raw.url_env.as_deref(),
            "url",
            &mut p,
        );
        if url.is_none() && raw.url_file.is_none() && raw.url_env.is_none() {
            p(
                "url_file",
                "is not set, nor url_env".into(),
                "put the webhook URL in a credential file named by url_file, or in the environment variable named by url_env",
            );
        }
        let url = url.and_then(|u| match Url::parse(u.expose_secret().trim()) {
            Ok(parsed)
                if parsed.scheme() == "https"
                    || (parsed.scheme() == "http" && super::validate::is_loopback(&parsed)) =>
            {
                Some(SecretString::from(parsed.to_string()))
            }
            // The value itself is never quoted: it is the secret.
            _ => {
                p(
                    "url_file",
                    "does not hold an https:// webhook URL (plain http only for loopback hosts)"
                        .into(),
                    "copy the webhook URL the channel gave you",
                );
                None
            }
        });
        let hmac = secret(
            env,
            raw.secret_file.as_deref(),
            raw.secret_env.as_deref(),
            "secret",
            &mut p,
        );
        if format == Some(Format::Json)
            && hmac.is_none()
            && raw.secret_file.is_none()
            && raw.secret_env.is_none()
        {
            p(
                "secret_file",
                "is required by the json format (the HMAC-SHA256 key), as is secret_env".into(),
                "put a random key (e.g. `openssl rand -hex 32`) in a credential file named by secret_file, or in the variable named by secret_env",
            );
        }
        let events = match raw.events {
            None => EventKind::ALL.to_vec(),
            Some(list) => {
                let mut kinds = Vec::new();
                for e in &list {
                    match EventKind::parse(e) {
                        Some(k) => kinds.push(k),
                        None => {
                            let known: Vec<&str> =
                                EventKind::ALL.iter().map(|k| k.as_str()).collect();
                            p(
                                "events",
                                format!("`{e}` is not an event"),
                                &format!("use some of {}", known.join(", ")),
                            );
                        }
                    }
                }
                kinds.sort();
                kinds.dedup();
                kinds
            }
        };
        if raw
            .min_deal_value
            .is_some_and(|v| !v.is_finite() || v < 0.0)
        {
            p(
                "min_deal_value",
                "must be a number of at least 0".into(),
                "write e.g. 10000",
            );
        }
        if let (Some(format), Some(url)) = (format, url) {
            out.push(Destination {
                name,
                format,
                url,
                secret: hmac,
                events,
                directions: raw.directions,
                types: raw.types,
                statuses: raw.statuses,
                min_deal_value: raw.min_deal_value,
            });
        }
    }
    if problems.is_empty() { out } else { Vec::new() }
}

/// A secret from a file or a variable (never both).
fn secret(
    env: &Env<'_>,
    file: Option<&Path>,
    var: Option<&str>,
    what: &str,
    p: &mut impl FnMut(&str, String, &str),
) -> Option<SecretString> {
    let file_key = format!("{what}_file");
    let env_key = format!("{what}_env");
    match (file, var) {
        (Some(_), Some(_)) => {
            p(
                &file_key,
                format!("and {env_key} are both set"),
                &format!("keep one of {file_key} and {env_key}"),
            );
            None
        }
        (Some(path), None) => {
            let full = match env.credentials_dir {
                Some(dir) if path.is_relative() => dir.join(path),
                _ => path.to_path_buf(),
            };
            match std::fs::read_to_string(&full) {
                Ok(text) if !text.trim().is_empty() => {
                    Some(SecretString::from(text.trim().to_owned()))
                }
                Ok(_) => {
                    p(
                        &file_key,
                        format!("{} is empty", full.display()),
                        "put the value in the file",
                    );
                    None
                }
                Err(e) => {
                    p(
                        &file_key,
                        format!("{} cannot be read: {e}", full.display()),
                        "check the path, LoadCredential= in the unit and the file's permissions",
                    );
                    None
                }
            }
        }
        (None, Some(name)) => match env.vars.get(name).filter(|v| !v.trim().is_empty()) {
            Some(v) => Some(SecretString::from(v.trim().to_owned())),
            None => {
                p(
                    &env_key,
                    format!("names the environment variable {name}, which is not set"),
                    &format!("set {name}, or name another variable"),
                );
                None
            }
        },
        (None, None) => None,
    }
}
