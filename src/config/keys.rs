//! The one table of settings. A row says everything the rest of `config` needs to know
//! about a key: its environment variable, how its text is parsed, how `config show`
//! prints it, what a reload does with a change, and a line of documentation. Adding a
//! setting is a field on [`Config`] (with its default) plus one row here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::parse::Values;
use super::{Config, LogFormat};
use Reload::{Auth, Live, Restart};
use Show::{Plain, Redacted, RedactedUrl};

/// One setting.
pub(crate) struct Key {
    /// The TOML key; for secrets also the credential file's name.
    pub name: &'static str,
    pub env: &'static str,
    pub parse: Parse,
    pub show: Show,
    pub reload: Reload,
    /// A few words for messages; the README's table has the long form.
    pub doc: &'static str,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("name", &self.name)
            .field("env", &self.env)
            .finish_non_exhaustive()
    }
}

/// Where a key's value lives in [`Config`], readable and writable, so loading, showing and
/// comparing all go through the same field.
pub(crate) struct Place<T: 'static> {
    get: fn(&Config) -> &T,
    set: fn(&mut Config) -> &mut T,
}

macro_rules! at {
    ($field:ident) => {
        Place {
            get: |c| &c.$field,
            set: |c| &mut c.$field,
        }
    };
}

/// How a key's text (from TOML, a credential file or the environment) becomes a value.
pub(crate) enum Parse {
    /// `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`; empty is false.
    Flag(Place<bool>),
    /// Taken as written.
    Text(Place<String>),
    /// Trimmed; empty means unset.
    OptionalText(Place<Option<String>>),
    /// Never printed; empty means unset; may also come from `$CREDENTIALS_DIRECTORY/<key>`.
    Secret(Place<Option<SecretString>>),
    /// An absolute http(s) URL.
    HttpUrl(Place<Url>),
    /// Seconds, or a number with a unit.
    Duration(Place<Duration>),
    /// A whole number.
    Count(Place<u32>),
    /// `address:port`; `localhost:port` means 127.0.0.1.
    SocketAddr(Place<SocketAddr>),
    /// A non-empty file path.
    Path(Place<PathBuf>),
    /// `auto`, `json`, `pretty` or `journald`.
    LogFormat(Place<LogFormat>),
    /// Host names: a TOML array, or comma-separated in the environment.
    Hosts(Place<Vec<String>>),
}

/// How `config show` prints a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Show {
    Plain,
    /// Only whether it is set.
    Redacted,
    /// The URL with its password replaced, so host and database stay visible.
    RedactedUrl,
}

/// What a reload does when the key's value changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reload {
    /// Takes effect at once.
    Live,
    /// Takes effect at once, after sign-in (the token provider) is rebuilt with it.
    Auth,
    /// The running value stays until a restart.
    Restart,
}

/// A key whose value differs between two configurations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    pub key: &'static str,
    pub reload: Reload,
}

const fn key(
    name: &'static str,
    env: &'static str,
    parse: Parse,
    show: Show,
    reload: Reload,
    doc: &'static str,
) -> Key {
    Key {
        name,
        env,
        parse,
        show,
        reload,
        doc,
    }
}

/// Every key, in the order `config show` prints them. Environment names keep the old
/// integration's prefix; `DATABASE_URL` and `RUST_LOG` are the names every tool uses.
#[rustfmt::skip]
pub(crate) const KEYS: &[Key] = &[
    key("enabled", "HUNTER_PARTNER_CENTER_ENABLED", Parse::Flag(at!(enabled)), Plain, Live, "feature flag"),
    key("client_id", "HUNTER_PARTNER_CENTER_CLIENT_ID", Parse::OptionalText(at!(client_id)), Plain, Auth, "Entra app (client) id"),
    key("client_secret", "HUNTER_PARTNER_CENTER_CLIENT_SECRET", Parse::Secret(at!(client_secret)), Redacted, Auth, "client secret"),
    key("tenant_id", "HUNTER_PARTNER_CENTER_TENANT_ID", Parse::OptionalText(at!(tenant_id)), Plain, Auth, "partner tenant"),
    key("account", "HUNTER_PARTNER_CENTER_ACCOUNT", Parse::OptionalText(at!(account)), Plain, Auth, "account username"),
    key("api_url", "HUNTER_PARTNER_CENTER_API_URL", Parse::HttpUrl(at!(api_url)), Plain, Live, "Referrals API base"),
    key("authority_url", "HUNTER_PARTNER_CENTER_AUTHORITY_URL", Parse::HttpUrl(at!(authority_url)), Plain, Auth, "identity host"),
    key("scope", "HUNTER_PARTNER_CENTER_SCOPE", Parse::Text(at!(scope)), Plain, Auth, "delegated scope"),
    key("sync_interval", "HUNTER_PARTNER_CENTER_SYNC_INTERVAL", Parse::Duration(at!(sync_interval)), Plain, Live, "time between scheduled runs"),
    key("sync_cron", "HUNTER_PARTNER_CENTER_SYNC_CRON", Parse::OptionalText(at!(sync_cron)), Plain, Live, "6-field cron schedule"),
    key("sync_on_startup", "HUNTER_PARTNER_CENTER_SYNC_ON_STARTUP", Parse::Flag(at!(sync_on_startup)), Plain, Live, "run once at start-up"),
    key("token_cache", "HUNTER_PARTNER_CENTER_TOKEN_CACHE", Parse::Path(at!(token_cache)), Plain, Auth, "MSAL token cache file"),
    key("listen", "HUNTER_PARTNER_CENTER_LISTEN", Parse::SocketAddr(at!(listen)), Plain, Restart, "HTTP listen address"),
    key("allow_unauthenticated_network", "HUNTER_PARTNER_CENTER_ALLOW_UNAUTHENTICATED_NETWORK", Parse::Flag(at!(allow_unauthenticated_network)), Plain, Live, "network listen without api_token"),
    key("public_hosts", "HUNTER_PARTNER_CENTER_PUBLIC_HOSTS", Parse::Hosts(at!(public_hosts)), Plain, Live, "host names behind a reverse proxy"),
    key("api_token", "HUNTER_PARTNER_CENTER_API_TOKEN", Parse::Secret(at!(api_token)), Redacted, Live, "API bearer token"),
    key("database_url", "DATABASE_URL", Parse::Secret(at!(database_url)), RedactedUrl, Restart, "PostgreSQL URL"),
    key("db_schema", "HUNTER_PARTNER_CENTER_DB_SCHEMA", Parse::Text(at!(db_schema)), Plain, Restart, "schema of the tables"),
    key("log_format", "HUNTER_PARTNER_CENTER_LOG_FORMAT", Parse::LogFormat(at!(log_format)), Plain, Live, "log format"),
    key("log_level", "RUST_LOG", Parse::Text(at!(log_level)), Plain, Live, "tracing filter"),
    key("http_connect_timeout", "HUNTER_PARTNER_CENTER_HTTP_CONNECT_TIMEOUT", Parse::Duration(at!(http_connect_timeout)), Plain, Auth, "outbound connect timeout"),
    key("http_timeout", "HUNTER_PARTNER_CENTER_HTTP_TIMEOUT", Parse::Duration(at!(http_timeout)), Plain, Auth, "outbound request timeout"),
    key("retry_max_attempts", "HUNTER_PARTNER_CENTER_RETRY_MAX_ATTEMPTS", Parse::Count(at!(retry_max_attempts)), Plain, Live, "attempts per request"),
    key("retry_budget", "HUNTER_PARTNER_CENTER_RETRY_BUDGET", Parse::Count(at!(retry_budget)), Plain, Live, "retries per run"),
    key("retry_max_delay", "HUNTER_PARTNER_CENTER_RETRY_MAX_DELAY", Parse::Duration(at!(retry_max_delay)), Plain, Live, "longest retry wait"),
    key("page_size", "HUNTER_PARTNER_CENTER_PAGE_SIZE", Parse::Count(at!(page_size)), Plain, Live, "referrals per page"),
    key("incremental_overlap", "HUNTER_PARTNER_CENTER_INCREMENTAL_OVERLAP", Parse::Duration(at!(incremental_overlap)), Plain, Live, "re-read window"),
    key("full_reconcile_every", "HUNTER_PARTNER_CENTER_FULL_RECONCILE_EVERY", Parse::Duration(at!(full_reconcile_every)), Plain, Live, "period of full passes"),
    key("run_deadline", "HUNTER_PARTNER_CENTER_RUN_DEADLINE", Parse::Duration(at!(run_deadline)), Plain, Live, "longest run"),
    key("shutdown_grace", "HUNTER_PARTNER_CENTER_SHUTDOWN_GRACE", Parse::Duration(at!(shutdown_grace)), Plain, Live, "time to commit on SIGTERM"),
    key("public_url", "HUNTER_PARTNER_CENTER_PUBLIC_URL", Parse::OptionalText(at!(public_url)), Plain, Live, "web UI address for links in notifications"),
    key("notify_expiring_within", "HUNTER_PARTNER_CENTER_NOTIFY_EXPIRING_WITHIN", Parse::Duration(at!(notify_expiring_within)), Plain, Live, "expiry warning window"),
    key("notify_digest_over", "HUNTER_PARTNER_CENTER_NOTIFY_DIGEST_OVER", Parse::Count(at!(notify_digest_over)), Plain, Live, "events per run and destination before a digest"),
    key("notify_stale_after", "HUNTER_PARTNER_CENTER_NOTIFY_STALE_AFTER", Parse::Duration(at!(notify_stale_after)), Plain, Live, "time without a successful run before sync_stale"),
    key("notify_unhealthy_after", "HUNTER_PARTNER_CENTER_NOTIFY_UNHEALTHY_AFTER", Parse::Count(at!(notify_unhealthy_after)), Plain, Live, "failures in a row before a destination is unhealthy"),
];

/// What `config show` prints for a key without a value.
const UNSET: &str = "(unset)";

impl<T> Place<T> {
    fn get<'c>(&self, config: &'c Config) -> &'c T {
        (self.get)(config)
    }

    /// `None` (absent or unparseable) keeps the value already there: the default.
    fn put(&self, config: &mut Config, value: Option<T>) {
        if let Some(v) = value {
            *(self.set)(config) = v;
        }
    }
}

impl<T: PartialEq> Place<T> {
    fn differs(&self, a: &Config, b: &Config) -> bool {
        self.get(a) != self.get(b)
    }
}

impl<T: Clone> Place<T> {
    fn copy(&self, from: &Config, to: &mut Config) {
        *(self.set)(to) = self.get(from).clone();
    }
}

impl Key {
    /// Only secrets may come from `$CREDENTIALS_DIRECTORY`.
    pub(super) fn is_secret(&self) -> bool {
        matches!(self.parse, Parse::Secret(_))
    }

    /// Parses this key's layered value into `config`; a bad value is reported and the
    /// default stays.
    pub(super) fn read(&self, values: &mut Values, config: &mut Config) {
        let k = self.name;
        match &self.parse {
            Parse::Flag(p) => p.put(config, values.flag(k)),
            Parse::Text(p) => p.put(config, values.text(k)),
            Parse::OptionalText(p) => p.put(config, values.optional_text(k)),
            Parse::Secret(p) => p.put(config, values.secret(k)),
            Parse::HttpUrl(p) => p.put(config, values.http_url(k)),
            Parse::Duration(p) => p.put(config, values.duration(k)),
            Parse::Count(p) => p.put(config, values.count(k)),
            Parse::SocketAddr(p) => p.put(config, values.socket_addr(k)),
            Parse::Path(p) => p.put(config, values.path(k)),
            Parse::LogFormat(p) => p.put(config, values.log_format(k)),
            Parse::Hosts(p) => p.put(config, values.hosts(k)),
        }
    }

    /// The value as `config show` prints it. A secret is never printed, even on a row
    /// marked `Plain` (a unit test keeps the rows honest).
    pub(super) fn show(&self, config: &Config) -> String {
        let quoted = |s: &str| format!("{s:?}");
        match &self.parse {
            Parse::Flag(p) => p.get(config).to_string(),
            Parse::Text(p) => quoted(p.get(config)),
            Parse::OptionalText(p) => p.get(config).as_deref().map_or(UNSET.to_owned(), quoted),
            Parse::Secret(p) => match (p.get(config), self.show) {
                (None, _) => UNSET.to_owned(),
                (Some(s), Show::RedactedUrl) => quoted(&redact_url(s.expose_secret())),
                (Some(_), _) => quoted("[redacted]"),
            },
            Parse::HttpUrl(p) => quoted(p.get(config).as_str()),
            Parse::Duration(p) => p.get(config).as_secs().to_string(),
            Parse::Count(p) => p.get(config).to_string(),
            Parse::SocketAddr(p) => quoted(&p.get(config).to_string()),
            Parse::Path(p) => quoted(&p.get(config).display().to_string()),
            Parse::LogFormat(p) => quoted(p.get(config).as_str()),
            Parse::Hosts(p) => format!("{:?}", p.get(config)),
        }
    }

    /// Secrets are compared by value, never shown.
    fn differs(&self, a: &Config, b: &Config) -> bool {
        match &self.parse {
            Parse::Flag(p) => p.differs(a, b),
            Parse::Text(p) => p.differs(a, b),
            Parse::OptionalText(p) => p.differs(a, b),
            Parse::Secret(p) => {
                let exposed = |c| p.get(c).as_ref().map(ExposeSecret::expose_secret);
                exposed(a) != exposed(b)
            }
            Parse::HttpUrl(p) => p.differs(a, b),
            Parse::Duration(p) => p.differs(a, b),
            Parse::Count(p) => p.differs(a, b),
            Parse::SocketAddr(p) => p.differs(a, b),
            Parse::Path(p) => p.differs(a, b),
            Parse::LogFormat(p) => p.differs(a, b),
            Parse::Hosts(p) => p.differs(a, b),
        }
    }

    fn copy(&self, from: &Config, to: &mut Config) {
        match &self.parse {
            Parse::Flag(p) => p.copy(from, to),
            Parse::Text(p) => p.copy(from, to),
            Parse::OptionalText(p) => p.copy(from, to),
            Parse::Secret(p) => p.copy(from, to),
            Parse::HttpUrl(p) => p.copy(from, to),
            Parse::Duration(p) => p.copy(from, to),
            Parse::Count(p) => p.copy(from, to),
            Parse::SocketAddr(p) => p.copy(from, to),
            Parse::Path(p) => p.copy(from, to),
            Parse::LogFormat(p) => p.copy(from, to),
            Parse::Hosts(p) => p.copy(from, to),
        }
    }
}

/// The keys whose value differs between the running configuration and a reloaded one,
/// in table order, each with what the reload does about it.
pub(crate) fn changes(old: &Config, new: &Config) -> Vec<Change> {
    let mut out: Vec<Change> = KEYS
        .iter()
        .filter(|k| k.differs(old, new))
        .map(|k| Change {
            key: k.name,
            reload: k.reload,
        })
        .collect();
    let same_destinations = old.notify.len() == new.notify.len()
        && old
            .notify
            .iter()
            .zip(&new.notify)
            .all(|(a, b)| a.same_as(b));
    if !same_destinations {
        // The delivery task is built with its destinations at start-up.
        out.push(Change {
            key: "notify",
            reload: Reload::Restart,
        });
    }
    out
}

impl Config {
    /// Puts back the running value of every restart-only key, so a reload applies the rest.
    pub(crate) fn keep_restart_values(&mut self, running: &Config) {
        for k in KEYS.iter().filter(|k| k.reload == Reload::Restart) {
            k.copy(running, self);
        }
        self.notify.clone_from(&running.notify);
    }
}

/// Hides the password of a database URL, in the user-info and in any `password`-like
/// query parameter (sqlx reads `?password=`), keeping the rest useful for diagnosis.
pub(crate) fn redact_url(raw: &str) -> String {
    let Ok(mut u) = Url::parse(raw) else {
        return "[unparseable]".to_owned();
    };
    if u.password().is_some() {
        let _ = u.set_password(Some("redacted"));
    }
    let is_password = |pair: &str| {
        url::form_urlencoded::parse(pair.as_bytes())
            .next()
            .is_some_and(|(name, _)| name.to_ascii_lowercase().contains("password"))
    };
    if let Some(query) = u.query().filter(|q| q.split('&').any(is_password)) {
        let redacted: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if is_password(pair) => format!("{name}=redacted"),
                _ => pair.to_owned(),
            })
            .collect();
        u.set_query(Some(&redacted.join("&")));
    }
    u.to_string()
}

/// The key an unknown name was probably meant to be: a small edit away, or one is the
/// other cut short. Case, `-` and `_` do not count.
pub(super) fn closest(unknown: &str) -> Option<&'static Key> {
    let norm = |s: &str| s.to_ascii_lowercase().replace(['-', '_'], "");
    let u = norm(unknown);
    KEYS.iter()
        .map(|k| (k, norm(k.name)))
        .map(|(k, n)| (k, strsim::levenshtein(&n, &u), n))
        .filter(|(_, distance, n)| {
            *distance <= 2 || (u.len() >= 4 && (n.starts_with(&u) || u.starts_with(n.as_str())))
        })
        .min_by_key(|(_, distance, _)| *distance)
        .map(|(k, _, _)| k)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashMap};

    use super::super::{LoadOptions, Read, Source, read};
    use super::*;

    /// A valid value for the row's parse rule that differs from its default.
    fn sample(key: &Key) -> &'static str {
        match &key.parse {
            Parse::Flag(p) if *p.get(&Config::default()) => "false",
            Parse::Flag(_) => "true",
            Parse::Text(_) | Parse::OptionalText(_) => "sample",
            Parse::Secret(_) => "postgres://user:sample-password@db.example/app",
            Parse::HttpUrl(_) => "https://sample.example/v1",
            Parse::Duration(_) | Parse::Count(_) => "7",
            Parse::SocketAddr(_) => "127.0.0.2:7",
            Parse::Path(_) => "/sample/cache.json",
            Parse::LogFormat(_) => "json",
            Parse::Hosts(_) => "sample.example",
        }
    }

    #[test]
    fn misspelt_names_find_their_key() {
        for (typo, key) in [
            ("sync_intervall", "sync_interval"),
            ("SYNC_INTERNAL", "sync_interval"),
            ("sync-on-start", "sync_on_startup"),
            ("DATABASE_URL", "database_url"),
            ("log_levl", "log_level"),
            ("public_host", "public_hosts"),
        ] {
            assert_eq!(closest(typo).map(|k| k.name), Some(key), "{typo}");
        }
        assert!(closest("colour").is_none());
    }

    #[test]
    fn every_key_has_an_env_name_a_parse_rule_a_reload_class_and_a_show_line() {
        let defaults = Config::default();
        let default_lines: HashMap<_, _> = defaults.display_values().into_iter().collect();
        assert_eq!(default_lines.len(), KEYS.len(), "one show line per key");
        let envs: BTreeSet<_> = KEYS.iter().map(|k| k.env).collect();
        assert_eq!(envs.len(), KEYS.len(), "every env name is distinct");
        for key in KEYS {
            assert!(!key.env.is_empty() && !key.doc.is_empty(), "{}", key.name);
            assert_eq!(
                key.is_secret(),
                key.show != Show::Plain,
                "{}: secrets, and only secrets, are redacted",
                key.name
            );
            let opts = LoadOptions {
                env: [(key.env.to_owned(), sample(key).to_owned())].into(),
                ..LoadOptions::default()
            };
            let Read { config, values, .. } = read(&opts).expect("no file to fail on");
            assert!(
                values.problems.is_empty(),
                "{}: {:?}",
                key.name,
                values.problems
            );
            assert_eq!(values.sources[key.name], Source::Env(key.env.into()));

            let lines: HashMap<_, _> = config.display_values().into_iter().collect();
            assert_ne!(lines[key.name], default_lines[key.name], "{}", key.name);
            assert!(!lines[key.name].contains("sample-password"), "{}", key.name);

            let change = Change {
                key: key.name,
                reload: key.reload,
            };
            assert_eq!(changes(&defaults, &config), [change]);
            let mut kept = config.clone();
            kept.keep_restart_values(&defaults);
            let still_changed = changes(&defaults, &kept);
            match key.reload {
                Reload::Restart => assert!(still_changed.is_empty(), "{}", key.name),
                Reload::Live | Reload::Auth => assert_eq!(still_changed, [change]),
            }
        }
    }

    fn sample_file_keys() -> BTreeSet<String> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/partner-center-sync.toml"
        );
        let text = std::fs::read_to_string(path).expect("sample config");
        // Set and commented-out settings alike: any line that is one TOML assignment,
        // up to the `[[notify]]` example, whose keys belong to its tables.
        text.lines()
            .take_while(|line| !line.contains("[[notify]]"))
            .filter_map(|line| {
                let line = line.trim_start_matches('#').trim();
                let table = toml::from_str::<toml::Table>(line).ok()?;
                (table.len() == 1).then(|| table.keys().next().cloned())?
            })
            .collect()
    }

    /// `key -> environment` from the README's Configuration table.
    fn readme_keys() -> BTreeMap<String, String> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let text = std::fs::read_to_string(path).expect("README");
        let section = text
            .split("\n## ")
            .find(|s| s.starts_with("Configuration"))
            .expect("a Configuration section");
        section
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|row| {
                let cells: Vec<&str> = row.split('|').map(|c| c.trim().trim_matches('`')).collect();
                (cells[1].to_owned(), cells[2].to_owned())
            })
            .collect()
    }

    #[test]
    fn the_sample_file_and_the_readme_list_exactly_the_keys_of_the_table() {
        let table: BTreeSet<String> = KEYS.iter().map(|k| k.name.to_owned()).collect();
        assert_eq!(sample_file_keys(), table, "config/partner-center-sync.toml");
        let readme = readme_keys();
        let documented: BTreeMap<String, String> = KEYS
            .iter()
            .map(|k| (k.name.to_owned(), k.env.to_owned()))
            .collect();
        assert_eq!(
            readme, documented,
            "README Configuration table (key -> env)"
        );
    }
}
