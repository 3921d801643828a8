//! Configuration: defaults < TOML file < systemd credential files < environment.
//!
//! figment does the layering; the typed conversion is ours so that every problem is
//! reported at once with its key, where the value came from and how to fix it (figment
//! stops at the first error, and refuses a numeric-looking env value for a string).
//! Environment names keep the old system's `HUNTER_PARTNER_CENTER_` prefix so existing
//! `.env` files keep working.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Toml};
use figment::value::Value;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// Prefix of every environment variable the daemon reads (kept from the old integration).
pub const ENV_PREFIX: &str = "HUNTER_PARTNER_CENTER_";
/// Read when no `--config` is given, if it exists.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/partner-center-sync/config.toml";
/// The Partner Center delegated scope; `user_impersonation` rather than `.default` so
/// MSAL-style cache matching by target works (identity reference, section 1).
pub const DEFAULT_SCOPE: &str = "https://api.partner.microsoft.com/user_impersonation";

/// The validated, effective configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub enabled: bool,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub tenant_id: Option<String>,
    /// Username to pick when the token cache holds several accounts.
    pub account: Option<String>,
    pub api_url: Url,
    pub authority_url: Url,
    pub scope: String,
    pub sync_interval: Duration,
    pub sync_cron: Option<String>,
    pub sync_on_startup: bool,
    pub token_cache: PathBuf,
    pub listen: SocketAddr,
    pub api_token: Option<SecretString>,
    pub database_url: Option<SecretString>,
    pub log_format: LogFormat,
    pub log_level: String,
    pub http_connect_timeout: Duration,
    pub http_timeout: Duration,
    pub retry_max_attempts: u32,
    pub retry_budget: u32,
    pub retry_max_delay: Duration,
    pub page_size: u32,
    pub incremental_overlap: Duration,
    pub full_reconcile_every: Duration,
    pub run_deadline: Duration,
    pub shutdown_grace: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Auto,
    Json,
    Pretty,
    Journald,
}

impl LogFormat {
    fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Some(Self::Auto),
            "json" => Some(Self::Json),
            "pretty" => Some(Self::Pretty),
            "journald" => Some(Self::Journald),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Json => "json",
            Self::Pretty => "pretty",
            Self::Journald => "journald",
        }
    }
}

impl Default for Config {
    /// The built-in defaults: integration disabled, Microsoft's public cloud.
    fn default() -> Self {
        Self {
            enabled: false,
            client_id: None,
            client_secret: None,
            tenant_id: None,
            account: None,
            api_url: Url::parse("https://api.partner.microsoft.com/v1.0").expect("static URL"),
            authority_url: Url::parse("https://login.microsoftonline.com").expect("static URL"),
            scope: DEFAULT_SCOPE.to_owned(),
            sync_interval: Duration::from_secs(600),
            sync_cron: None,
            sync_on_startup: true,
            token_cache: PathBuf::from("token_cache/msal_token_cache.json"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            api_token: None,
            database_url: None,
            log_format: LogFormat::Auto,
            log_level: "info".to_owned(),
            http_connect_timeout: Duration::from_secs(10),
            http_timeout: Duration::from_secs(60),
            retry_max_attempts: 6,
            retry_budget: 100,
            retry_max_delay: Duration::from_secs(120),
            page_size: 100,
            incremental_overlap: Duration::from_secs(600),
            full_reconcile_every: Duration::from_secs(24 * 3600),
            run_deadline: Duration::from_secs(3600),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Where an effective value came from; shown by `config show` and in every problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    Credential(PathBuf),
    Env(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Credential(p) => write!(f, "credential {}", p.display()),
            Source::Env(v) => write!(f, "env {v}"),
        }
    }
}

/// One thing wrong with the configuration.
#[derive(Clone, Debug)]
pub struct Problem {
    pub key: String,
    pub source: Source,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (from {}): {}; {}",
            self.key, self.source, self.message, self.fix
        )
    }
}

/// Every problem found, so an operator fixes them all in one pass.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Invalid configuration ({} problem", self.problems.len())?;
        if self.problems.len() != 1 {
            f.write_str("s")?;
        }
        f.write_str("):")?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Str,
    Secret,
    Url,
    Seconds,
    Count,
    Addr,
    Path,
}

struct KeySpec {
    key: &'static str,
    env: &'static str,
    /// Only secrets may come from `$CREDENTIALS_DIRECTORY`.
    kind: Kind,
    doc: &'static str,
}

const fn spec(key: &'static str, env: &'static str, kind: Kind, doc: &'static str) -> KeySpec {
    KeySpec {
        key,
        env,
        kind,
        doc,
    }
}

/// Every key, its environment variable and type; the single list `config show`,
/// unknown-key detection and the README's reference table are checked against.
const KEYS: &[KeySpec] = &[
    spec(
        "enabled",
        "HUNTER_PARTNER_CENTER_ENABLED",
        Kind::Bool,
        "feature flag",
    ),
    spec(
        "client_id",
        "HUNTER_PARTNER_CENTER_CLIENT_ID",
        Kind::Str,
        "Entra app (client) id",
    ),
    spec(
        "client_secret",
        "HUNTER_PARTNER_CENTER_CLIENT_SECRET",
        Kind::Secret,
        "client secret",
    ),
    spec(
        "tenant_id",
        "HUNTER_PARTNER_CENTER_TENANT_ID",
        Kind::Str,
        "partner tenant",
    ),
    spec(
        "account",
        "HUNTER_PARTNER_CENTER_ACCOUNT",
        Kind::Str,
        "account username",
    ),
    spec(
        "api_url",
        "HUNTER_PARTNER_CENTER_API_URL",
        Kind::Url,
        "Referrals API base",
    ),
    spec(
        "authority_url",
        "HUNTER_PARTNER_CENTER_AUTHORITY_URL",
        Kind::Url,
        "identity host",
    ),
    spec(
        "scope",
        "HUNTER_PARTNER_CENTER_SCOPE",
        Kind::Str,
        "delegated scope",
    ),
    spec(
        "sync_interval",
        "HUNTER_PARTNER_CENTER_SYNC_INTERVAL",
        Kind::Seconds,
        "interval",
    ),
    spec(
        "sync_cron",
        "HUNTER_PARTNER_CENTER_SYNC_CRON",
        Kind::Str,
        "6-field cron",
    ),
    spec(
        "sync_on_startup",
        "HUNTER_PARTNER_CENTER_SYNC_ON_STARTUP",
        Kind::Bool,
        "startup run",
    ),
    spec(
        "token_cache",
        "HUNTER_PARTNER_CENTER_TOKEN_CACHE",
        Kind::Path,
        "MSAL cache file",
    ),
    spec(
        "listen",
        "HUNTER_PARTNER_CENTER_LISTEN",
        Kind::Addr,
        "HTTP listen address",
    ),
    spec(
        "api_token",
        "HUNTER_PARTNER_CENTER_API_TOKEN",
        Kind::Secret,
        "API bearer token",
    ),
    spec(
        "database_url",
        "DATABASE_URL",
        Kind::Secret,
        "PostgreSQL URL",
    ),
    spec(
        "log_format",
        "HUNTER_PARTNER_CENTER_LOG_FORMAT",
        Kind::Str,
        "log format",
    ),
    spec("log_level", "RUST_LOG", Kind::Str, "tracing filter"),
    spec(
        "http_connect_timeout",
        "HUNTER_PARTNER_CENTER_HTTP_CONNECT_TIMEOUT",
        Kind::Seconds,
        "",
    ),
    spec(
        "http_timeout",
        "HUNTER_PARTNER_CENTER_HTTP_TIMEOUT",
        Kind::Seconds,
        "",
    ),
    spec(
        "retry_max_attempts",
        "HUNTER_PARTNER_CENTER_RETRY_MAX_ATTEMPTS",
        Kind::Count,
        "",
    ),
    spec(
        "retry_budget",
        "HUNTER_PARTNER_CENTER_RETRY_BUDGET",
        Kind::Count,
        "",
    ),
    spec(
        "retry_max_delay",
        "HUNTER_PARTNER_CENTER_RETRY_MAX_DELAY",
        Kind::Seconds,
        "",
    ),
    spec(
        "page_size",
        "HUNTER_PARTNER_CENTER_PAGE_SIZE",
        Kind::Count,
        "",
    ),
    spec(
        "incremental_overlap",
        "HUNTER_PARTNER_CENTER_INCREMENTAL_OVERLAP",
        Kind::Seconds,
        "",
    ),
    spec(
        "full_reconcile_every",
        "HUNTER_PARTNER_CENTER_FULL_RECONCILE_EVERY",
        Kind::Seconds,
        "",
    ),
    spec(
        "run_deadline",
        "HUNTER_PARTNER_CENTER_RUN_DEADLINE",
        Kind::Seconds,
        "",
    ),
    spec(
        "shutdown_grace",
        "HUNTER_PARTNER_CENTER_SHUTDOWN_GRACE",
        Kind::Seconds,
        "",
    ),
];

/// Everything `load` reads from outside, captured once so tests and reloads are explicit.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// `--config PATH`: must exist.
    pub path: Option<PathBuf>,
    /// Used when `path` is `None` and the file exists.
    pub default_path: Option<PathBuf>,
    pub env: HashMap<String, String>,
    /// systemd's `$CREDENTIALS_DIRECTORY` (`LoadCredential=`).
    pub credentials_dir: Option<PathBuf>,
    /// systemd's `$STATE_DIRECTORY` (`StateDirectory=`): default home of the token cache.
    pub state_dir: Option<PathBuf>,
}

impl LoadOptions {
    /// Reads the process environment: used by the CLI at start-up and on every SIGHUP.
    pub fn from_process(path: Option<PathBuf>) -> Self {
        let env: HashMap<String, String> = std::env::vars().collect();
        let credentials_dir = env.get("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        // systemd passes several directories colon-separated; the first is ours.
        let state_dir = env
            .get("STATE_DIRECTORY")
            .and_then(|s| s.split(':').next().map(PathBuf::from));
        Self {
            path,
            default_path: Some(PathBuf::from(DEFAULT_CONFIG_PATH)),
            env,
            credentials_dir,
            state_dir,
        }
    }
}

/// A loaded configuration plus where each value came from.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub config: Config,
    pub sources: BTreeMap<&'static str, Source>,
    pub file: Option<PathBuf>,
}

/// Loads and validates. Every problem is collected before returning.
pub fn load(opts: &LoadOptions) -> Result<Loaded, ConfigError> {
    let mut problems = Vec::new();
    let file = match (&opts.path, &opts.default_path) {
        (Some(p), _) => {
            if !p.is_file() {
                problems.push(Problem {
                    key: "--config".into(),
                    source: Source::File(p.clone()),
                    message: format!("the file {} does not exist or is not a file", p.display()),
                    fix: "pass the path of an existing TOML file (see config/partner-center-sync.toml)".into(),
                });
                return Err(ConfigError { problems });
            }
            Some(p.clone())
        }
        (None, Some(p)) if p.is_file() => Some(p.clone()),
        _ => None,
    };

    let mut figment = Figment::new();
    let mut file_keys = Vec::new();
    if let Some(path) = &file {
        // `file_exact`: `Toml::file` would search parent folders and silently yield nothing.
        match Figment::from(Toml::file_exact(path)).extract::<BTreeMap<String, Value>>() {
            Ok(map) => file_keys = map.into_keys().collect(),
            Err(e) => {
                problems.push(Problem {
                    key: "--config".into(),
                    source: Source::File(path.clone()),
                    message: format!("the file is not valid TOML: {e}"),
                    fix: "fix the syntax (see config/partner-center-sync.toml for the format)"
                        .into(),
                });
                return Err(ConfigError { problems });
            }
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    for k in &file_keys {
        if !KEYS.iter().any(|s| s.key == k) {
            let hint = closest_key(k)
                .map(|c| format!("did you mean `{c}`? "))
                .unwrap_or_default();
            problems.push(Problem {
                key: k.clone(),
                source: Source::File(file.clone().unwrap_or_default()),
                message: "unknown key".into(),
                fix: format!(
                    "{hint}remove it or use one of the keys in config/partner-center-sync.toml"
                ),
            });
        }
    }

    let mut sources = BTreeMap::new();
    let mut raw: BTreeMap<&'static str, Value> = BTreeMap::new();
    for s in KEYS {
        let mut source = Source::Default;
        if let Ok(v) = figment.find_value(s.key) {
            raw.insert(s.key, v);
            source = Source::File(file.clone().unwrap_or_default());
        }
        if s.kind == Kind::Secret {
            if let Some(dir) = &opts.credentials_dir {
                let p = dir.join(s.key);
                match std::fs::read_to_string(&p) {
                    Ok(v) => {
                        raw.insert(
                            s.key,
                            Value::from(v.trim_end_matches(['\n', '\r']).to_owned()),
                        );
                        source = Source::Credential(p);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => problems.push(Problem {
                        key: s.key.into(),
                        source: Source::Credential(p.clone()),
                        message: format!("the credential file cannot be read: {e}"),
                        fix: "check LoadCredential= in the unit and the file's permissions".into(),
                    }),
                }
            }
        }
        if let Some(v) = opts.env.get(s.env) {
            raw.insert(s.key, Value::from(v.clone()));
            source = Source::Env(s.env.to_owned());
        }
        sources.insert(s.key, source);
    }

    let mut c = Config::default();
    if let Some(dir) = &opts.state_dir {
        c.token_cache = dir.join("msal_token_cache.json");
    }
    let mut conv = Converter {
        raw: &raw,
        sources: &sources,
        problems: &mut problems,
    };
    conv.bool("enabled", &mut c.enabled);
    conv.opt_string("client_id", &mut c.client_id);
    conv.opt_secret("client_secret", &mut c.client_secret);
    conv.opt_string("tenant_id", &mut c.tenant_id);
    conv.opt_string("account", &mut c.account);
    conv.url("api_url", &mut c.api_url);
    conv.url("authority_url", &mut c.authority_url);
    conv.string("scope", &mut c.scope);
    conv.seconds("sync_interval", &mut c.sync_interval);
    conv.opt_string("sync_cron", &mut c.sync_cron);
    conv.bool("sync_on_startup", &mut c.sync_on_startup);
    conv.path("token_cache", &mut c.token_cache);
    conv.addr("listen", &mut c.listen);
    conv.opt_secret("api_token", &mut c.api_token);
    conv.opt_secret("database_url", &mut c.database_url);
    let mut log_format = c.log_format.as_str().to_owned();
    conv.string("log_format", &mut log_format);
    conv.string("log_level", &mut c.log_level);
    conv.seconds("http_connect_timeout", &mut c.http_connect_timeout);
    conv.seconds("http_timeout", &mut c.http_timeout);
    conv.count("retry_max_attempts", &mut c.retry_max_attempts);
    conv.count("retry_budget", &mut c.retry_budget);
    conv.seconds("retry_max_delay", &mut c.retry_max_delay);
    conv.count("page_size", &mut c.page_size);
    conv.seconds("incremental_overlap", &mut c.incremental_overlap);
    conv.seconds("full_reconcile_every", &mut c.full_reconcile_every);
    conv.seconds("run_deadline", &mut c.run_deadline);
    conv.seconds("shutdown_grace", &mut c.shutdown_grace);
    match LogFormat::parse(&log_format) {
        Some(f) => c.log_format = f,
        None => conv.problem(
            "log_format",
            format!("`{log_format}` is not a log format"),
            "use auto, json, pretty or journald",
        ),
    }
    validate(&c, &mut conv);

    if problems.is_empty() {
        Ok(Loaded {
            config: c,
            sources,
            file,
        })
    } else {
        Err(ConfigError { problems })
    }
}

fn validate(c: &Config, conv: &mut Converter<'_>) {
    if c.enabled {
        if c.client_id.as_deref().is_none_or(str::is_empty) {
            conv.problem(
                "client_id",
                "is required when the integration is enabled".into(),
                "set HUNTER_PARTNER_CENTER_CLIENT_ID to the Entra app (client) id",
            );
        }
        if c.tenant_id.as_deref().is_none_or(str::is_empty) {
            conv.problem(
                "tenant_id",
                "is required when the integration is enabled".into(),
                "set HUNTER_PARTNER_CENTER_TENANT_ID to the partner tenant's GUID or domain, or `organizations`",
            );
        }
    }
    if let Some(t) = &c.tenant_id {
        if !t.is_empty() && !valid_tenant(t) {
            conv.problem(
                "tenant_id",
                format!("`{t}` is not a tenant GUID, a domain or `organizations`"),
                "use the partner tenant's GUID (best), its domain, or `organizations`",
            );
        }
    }
    for (key, url) in [("api_url", &c.api_url), ("authority_url", &c.authority_url)] {
        if url.scheme() != "https" && !(url.scheme() == "http" && is_loopback(url)) {
            conv.problem(
                key,
                format!("`{url}` must use https (plain http is allowed only for loopback hosts)"),
                "use an https:// URL",
            );
        }
    }
    if c.sync_interval < Duration::from_secs(1) || c.sync_interval > Duration::from_secs(7 * 86400)
    {
        conv.problem(
            "sync_interval",
            "must be between 1 second and 7 days".into(),
            "use e.g. 600 (production) or 30-60 (development)",
        );
    }
    if let Some(cron) = &c.sync_cron {
        if let Err(e) = parse_cron(cron) {
            conv.problem(
                "sync_cron",
                format!("`{cron}` is not a 6-field cron expression: {e}"),
                "write seconds first, e.g. \"0 */10 * * * *\"",
            );
        } else if conv.sources.get("sync_interval") != Some(&Source::Default) {
            conv.problem(
                "sync_cron",
                "is set together with an explicit sync_interval".into(),
                "set either sync_interval or sync_cron, not both",
            );
        }
    }
    if let Some(db) = &c.database_url {
        let s = db.expose_secret();
        if !(s.starts_with("postgres://") || s.starts_with("postgresql://")) {
            conv.problem(
                "database_url",
                "is not a postgres:// URL".into(),
                "use postgres://USER:PASSWORD@HOST:PORT/DATABASE",
            );
        }
    }
    if let Some(t) = &c.api_token {
        if t.expose_secret().len() < 16 {
            conv.problem(
                "api_token",
                "is shorter than 16 characters".into(),
                "use a long random value, e.g. `openssl rand -hex 32`",
            );
        }
    }
    if tracing_subscriber::EnvFilter::try_new(&c.log_level).is_err() {
        conv.problem(
            "log_level",
            format!("`{}` is not a valid tracing filter", c.log_level),
            "use e.g. info, debug or partner_center_sync=debug,info",
        );
    }
    if !(1..=100).contains(&c.page_size) {
        conv.problem(
            "page_size",
            format!("{} is outside 1-100", c.page_size),
            "Partner Center serves at most 100 referrals a page; use 100",
        );
    }
    if c.retry_max_attempts == 0 {
        conv.problem(
            "retry_max_attempts",
            "must be at least 1".into(),
            "use e.g. 6",
        );
    }
    for (key, d) in [
        ("http_connect_timeout", c.http_connect_timeout),
        ("http_timeout", c.http_timeout),
        ("run_deadline", c.run_deadline),
        ("full_reconcile_every", c.full_reconcile_every),
    ] {
        if d.is_zero() {
            conv.problem(
                key,
                "must be greater than zero".into(),
                "use a positive number of seconds",
            );
        }
    }
    if c.scope.split_whitespace().count() != 1 {
        conv.problem("scope", "must be exactly one resource scope".into(), "use https://api.partner.microsoft.com/user_impersonation (offline_access openid profile are added)");
    }
}

/// Validates with the same parser tokio-cron-scheduler uses, seconds required.
pub fn parse_cron(expr: &str) -> Result<croner::Cron, String> {
    if expr.split_whitespace().count() != 6 {
        return Err(format!(
            "has {} fields, expected 6",
            expr.split_whitespace().count()
        ));
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .build()
        .parse(expr)
        .map_err(|e| e.to_string())
}

fn valid_tenant(t: &str) -> bool {
    if t == "organizations" || t == "common" {
        return true;
    }
    let guid = t.len() == 36
        && t.chars().enumerate().all(|(i, ch)| match i {
            8 | 13 | 18 | 23 => ch == '-',
            _ => ch.is_ascii_hexdigit(),
        });
    let domain = t.contains('.')
        && t.split('.')
            .all(|l| !l.is_empty() && l.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-'));
    guid || domain
}

/// http is allowed only towards this machine, so the emulator and tests work while a
/// production token can never cross the network in clear text.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn closest_key(unknown: &str) -> Option<&'static str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace(['-', '_'], "");
    let u = norm(unknown);
    KEYS.iter().map(|s| s.key).find(|k| {
        let n = norm(k);
        n.starts_with(&u) || u.starts_with(&n) || n == u
    })
}

struct Converter<'a> {
    raw: &'a BTreeMap<&'static str, Value>,
    sources: &'a BTreeMap<&'static str, Source>,
    problems: &'a mut Vec<Problem>,
}

impl Converter<'_> {
    fn problem(&mut self, key: &str, message: String, fix: &str) {
        let source = self.sources.get(key).cloned().unwrap_or(Source::Default);
        self.problems.push(Problem {
            key: key.into(),
            source,
            message,
            fix: fix.into(),
        });
    }

    /// Strings from env and credential files, numbers or strings from TOML: all accepted
    /// as text, so a numeric-looking client id is still a string.
    fn text(&mut self, key: &'static str) -> Option<String> {
        match self.raw.get(key)? {
            Value::String(_, s) => Some(s.clone()),
            Value::Num(_, n) => Some(
                n.to_u128()
                    .map(|v| v.to_string())
                    .or_else(|| n.to_i128().map(|v| v.to_string()))
                    .or_else(|| n.to_f64().map(|v| v.to_string()))
                    .unwrap_or_default(),
            ),
            Value::Bool(_, b) => Some(b.to_string()),
            other => {
                let found = other.to_actual().to_string();
                self.problem(
                    key,
                    format!("expected a single value, found {found}"),
                    "write a plain value",
                );
                None
            }
        }
    }

    fn string(&mut self, key: &'static str, out: &mut String) {
        if let Some(v) = self.text(key) {
            *out = v;
        }
    }

    fn opt_string(&mut self, key: &'static str, out: &mut Option<String>) {
        if let Some(v) = self.text(key) {
            *out = (!v.trim().is_empty()).then(|| v.trim().to_owned());
        }
    }

    fn opt_secret(&mut self, key: &'static str, out: &mut Option<SecretString>) {
        if let Some(v) = self.text(key) {
            *out = (!v.is_empty()).then(|| SecretString::from(v));
        }
    }

    fn bool(&mut self, key: &'static str, out: &mut bool) {
        if let Some(v) = self.text(key) {
            match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => *out = true,
                "false" | "0" | "no" | "off" | "" => *out = false,
                _ => self.problem(key, format!("`{v}` is not a boolean"), "use true or false"),
            }
        }
    }

    fn count(&mut self, key: &'static str, out: &mut u32) {
        if let Some(v) = self.text(key) {
            match v.trim().parse() {
                Ok(n) => *out = n,
                Err(_) => self.problem(
                    key,
                    format!("`{v}` is not a whole number"),
                    "use a number such as 100",
                ),
            }
        }
    }

    fn seconds(&mut self, key: &'static str, out: &mut Duration) {
        if let Some(v) = self.text(key) {
            match parse_duration(&v) {
                Some(d) => *out = d,
                None => self.problem(
                    key,
                    format!("`{v}` is not a duration"),
                    "use a number of seconds (600) or a number with a unit: 30s, 10m, 24h, 7d",
                ),
            }
        }
    }

    fn url(&mut self, key: &'static str, out: &mut Url) {
        if let Some(v) = self.text(key) {
            match Url::parse(v.trim()) {
                Ok(u) if u.has_host() && matches!(u.scheme(), "http" | "https") => *out = u,
                _ => self.problem(
                    key,
                    format!("`{v}` is not an absolute http(s) URL"),
                    "write it like https://host/path",
                ),
            }
        }
    }

    fn addr(&mut self, key: &'static str, out: &mut SocketAddr) {
        if let Some(v) = self.text(key) {
            let v = v.trim();
            let parsed = v.parse::<SocketAddr>().ok().or_else(|| {
                let (host, port) = v.rsplit_once(':')?;
                let port: u16 = port.parse().ok()?;
                (host == "localhost").then(|| SocketAddr::new(IpAddr::from([127, 0, 0, 1]), port))
            });
            match parsed {
                Some(a) => *out = a,
                None => self.problem(
                    key,
                    format!("`{v}` is not an address:port"),
                    "use e.g. 127.0.0.1:8000 or 0.0.0.0:8000",
                ),
            }
        }
    }

    fn path(&mut self, key: &'static str, out: &mut PathBuf) {
        if let Some(v) = self.text(key) {
            if v.trim().is_empty() {
                self.problem(
                    key,
                    "is empty".into(),
                    "give a file path, e.g. /var/lib/partner-center-sync/msal_token_cache.json",
                );
            } else {
                *out = PathBuf::from(v.trim());
            }
        }
    }
}

/// `600`, `600s`, `10m`, `24h`, `7d`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 's') => (&s[..i], 1),
        (i, 'm') => (&s[..i], 60),
        (i, 'h') => (&s[..i], 3600),
        (i, 'd') => (&s[..i], 86400),
        _ => (s, 1),
    };
    let n: u64 = num.trim().parse().ok()?;
    n.checked_mul(mult).map(Duration::from_secs)
}

impl Config {
    /// The database URL, or the problem telling the operator to set it.
    pub fn require_database_url(&self) -> Result<&SecretString, ConfigError> {
        self.database_url.as_ref().ok_or_else(|| ConfigError {
            problems: vec![Problem {
                key: "database_url".into(),
                source: Source::Default,
                message: "is not set".into(),
                fix: "set DATABASE_URL=postgres://USER:PASSWORD@HOST:PORT/DATABASE".into(),
            }],
        })
    }

    /// Effective values for `config show` and reload diffs; secrets are redacted here,
    /// and this is the only place values are turned into text.
    pub fn display_values(&self) -> Vec<(&'static str, String)> {
        let opt = |o: &Option<String>| {
            o.clone()
                .map_or_else(|| "(unset)".to_owned(), |v| format!("{v:?}"))
        };
        let secret = |o: &Option<SecretString>| {
            if o.is_some() {
                "\"[redacted]\"".to_owned()
            } else {
                "(unset)".to_owned()
            }
        };
        let secs = |d: Duration| d.as_secs().to_string();
        vec![
            ("enabled", self.enabled.to_string()),
            ("client_id", opt(&self.client_id)),
            ("client_secret", secret(&self.client_secret)),
            ("tenant_id", opt(&self.tenant_id)),
            ("account", opt(&self.account)),
            ("api_url", format!("{:?}", self.api_url.as_str())),
            (
                "authority_url",
                format!("{:?}", self.authority_url.as_str()),
            ),
            ("scope", format!("{:?}", self.scope)),
            ("sync_interval", secs(self.sync_interval)),
            ("sync_cron", opt(&self.sync_cron)),
            ("sync_on_startup", self.sync_on_startup.to_string()),
            (
                "token_cache",
                format!("{:?}", self.token_cache.display().to_string()),
            ),
            ("listen", format!("{:?}", self.listen.to_string())),
            ("api_token", secret(&self.api_token)),
            (
                "database_url",
                self.database_url.as_ref().map_or_else(
                    || "(unset)".to_owned(),
                    |u| format!("{:?}", redact_url(u.expose_secret())),
                ),
            ),
            ("log_format", format!("{:?}", self.log_format.as_str())),
            ("log_level", format!("{:?}", self.log_level)),
            ("http_connect_timeout", secs(self.http_connect_timeout)),
            ("http_timeout", secs(self.http_timeout)),
            ("retry_max_attempts", self.retry_max_attempts.to_string()),
            ("retry_budget", self.retry_budget.to_string()),
            ("retry_max_delay", secs(self.retry_max_delay)),
            ("page_size", self.page_size.to_string()),
            ("incremental_overlap", secs(self.incremental_overlap)),
            ("full_reconcile_every", secs(self.full_reconcile_every)),
            ("run_deadline", secs(self.run_deadline)),
            ("shutdown_grace", secs(self.shutdown_grace)),
        ]
    }

    /// Keys whose effective value differs, secrets compared by value but never shown.
    pub fn changed_keys(&self, other: &Config) -> Vec<&'static str> {
        let same_secret = |a: &Option<SecretString>, b: &Option<SecretString>| {
            a.as_ref().map(|s| s.expose_secret().to_owned())
                == b.as_ref().map(|s| s.expose_secret().to_owned())
        };
        let mut changed: Vec<&'static str> = self
            .display_values()
            .into_iter()
            .zip(other.display_values())
            .filter(|(a, b)| a.1 != b.1)
            .map(|(a, _)| a.0)
            .filter(|k| !matches!(*k, "client_secret" | "api_token" | "database_url"))
            .collect();
        for (key, a, b) in [
            ("client_secret", &self.client_secret, &other.client_secret),
            ("api_token", &self.api_token, &other.api_token),
            ("database_url", &self.database_url, &other.database_url),
        ] {
            if !same_secret(a, b) {
                changed.push(key);
            }
        }
        changed
    }

    /// The keys that only take effect after a restart.
    pub const RESTART_KEYS: &'static [&'static str] = &["listen", "database_url"];
}

/// Hides the password of a database URL, keeping the rest useful for diagnosis.
pub fn redact_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("redacted"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "[unparseable]".to_owned(),
    }
}

/// The documented keys, for the README and `config show`.
pub fn key_env_names() -> impl Iterator<Item = (&'static str, &'static str, &'static str)> {
    KEYS.iter().map(|s| (s.key, s.env, s.doc))
}

/// A config file path as given, for messages.
pub fn describe_file(file: Option<&Path>) -> String {
    file.map_or_else(
        || "(no config file; defaults and environment only)".to_owned(),
        |p| p.display().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(env: &[(&str, &str)], file: Option<&str>) -> (LoadOptions, Option<tempfile::TempDir>) {
        let dir = file.map(|content| {
            let dir = tempfile::tempdir().expect("tempdir");
            std::fs::write(dir.path().join("c.toml"), content).expect("write");
            dir
        });
        let o = LoadOptions {
            path: dir.as_ref().map(|d| d.path().join("c.toml")),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..LoadOptions::default()
        };
        (o, dir)
    }

    #[test]
    fn env_overrides_file_and_numeric_client_id_stays_a_string() {
        let (o, _d) = opts(
            &[("HUNTER_PARTNER_CENTER_CLIENT_ID", "12345")],
            Some("client_id = \"from-file\"\nsync_interval = 45\n"),
        );
        let l = load(&o).expect("valid");
        assert_eq!(l.config.client_id.as_deref(), Some("12345"));
        assert_eq!(
            l.sources["client_id"],
            Source::Env("HUNTER_PARTNER_CENTER_CLIENT_ID".into())
        );
        assert_eq!(l.config.sync_interval, Duration::from_secs(45));
        assert!(matches!(l.sources["sync_interval"], Source::File(_)));
    }

    #[test]
    fn type_error_and_bad_url_are_both_reported() {
        let (o, _d) = opts(
            &[],
            Some("sync_interval = \"soon\"\napi_url = \"not a url\"\n"),
        );
        let e = load(&o).expect_err("invalid");
        let keys: Vec<_> = e.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["api_url", "sync_interval"], "{e}");
    }

    #[test]
    fn http_is_allowed_only_for_loopback() {
        for (url, ok) in [
            ("http://127.0.0.1:9/v1.0", true),
            ("http://127.9.9.9/v1.0", true),
            ("http://localhost:1", true),
            ("http://[::1]:1", true),
            ("http://example.com", false),
            ("http://10.0.0.1", false),
            ("https://example.com", true),
        ] {
            let (o, _d) = opts(&[("HUNTER_PARTNER_CENTER_API_URL", url)], None);
            assert_eq!(load(&o).is_ok(), ok, "{url}");
        }
    }

    #[test]
    fn durations_accept_units() {
        assert_eq!(parse_duration("600"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("24h"), Some(Duration::from_secs(86400)));
        assert_eq!(parse_duration("soon"), None);
    }

    #[test]
    fn cron_and_explicit_interval_conflict() {
        let (o, _d) = opts(
            &[
                ("HUNTER_PARTNER_CENTER_SYNC_CRON", "0 */10 * * * *"),
                ("HUNTER_PARTNER_CENTER_SYNC_INTERVAL", "60"),
            ],
            None,
        );
        let e = load(&o).expect_err("conflict");
        assert_eq!(e.problems[0].key, "sync_cron");
        let (o, _d) = opts(&[("HUNTER_PARTNER_CENTER_SYNC_CRON", "*/10 * * * *")], None);
        assert!(
            load(&o).expect_err("5 fields").problems[0]
                .message
                .contains("6")
        );
    }

    #[test]
    fn secrets_are_redacted_in_debug_and_display() {
        let (o, _d) = opts(
            &[
                ("HUNTER_PARTNER_CENTER_CLIENT_SECRET", "s3cr3t-value-xyz"),
                ("DATABASE_URL", "postgres://u:dbpass123@h/db"),
            ],
            None,
        );
        let l = load(&o).expect("valid");
        let debug = format!("{:?}", l.config);
        let shown = format!("{:?}", l.config.display_values());
        for text in [debug, shown] {
            assert!(
                !text.contains("s3cr3t-value-xyz") && !text.contains("dbpass123"),
                "{text}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_reported_with_a_suggestion() {
        let (o, _d) = opts(&[], Some("sync_intervall = 60\n"));
        let e = load(&o).expect_err("unknown key");
        assert!(e.problems[0].fix.contains("sync_interval"), "{e}");
    }

    #[test]
    fn credential_files_fill_secrets() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("client_secret"), "from-credential\n").expect("write");
        let o = LoadOptions {
            credentials_dir: Some(dir.path().into()),
            ..LoadOptions::default()
        };
        let l = load(&o).expect("valid");
        assert_eq!(
            l.config.client_secret.expect("set").expose_secret(),
            "from-credential"
        );
        assert!(matches!(l.sources["client_secret"], Source::Credential(_)));
    }
}
