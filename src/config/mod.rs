//! Configuration: defaults < TOML file < systemd credential files < environment.
//!
//! - `keys.rs`: the one table of settings (env name, parse rule, how `config show`
//!   prints it, what a reload does with it); reload diffs are derived from it.
//! - `parse.rs`: raw text to typed values, each bad value reported with its source.
//! - `validate.rs`: the checks across keys.
//! - `error.rs`: a problem (key, source, message, fix) and the error listing them all.
//! - `env.rs`: unknown `HUNTER_PARTNER_CENTER_*` variables and file keys the environment
//!   overrides, reported as warnings (`config check` makes the first an error).
//!
//! figment reads the TOML file; the layering over it and the typed conversion are ours so
//! that every problem is reported at once with its key, where the value came from and how
//! to fix it (figment stops at the first error, and refuses a numeric-looking env value
//! for a string). Environment names keep the old system's `HUNTER_PARTNER_CENTER_` prefix
//! so existing `.env` files keep working.

mod env;
mod error;
mod keys;
mod notify;
mod parse;
mod validate;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format as _, Toml};
use figment::value::Value;
use secrecy::SecretString;
use url::Url;

use env::{Shadowed, UnknownEnv};
pub(crate) use error::{ConfigError, Problem, Source};
#[cfg(any(test, feature = "dev"))]
pub(crate) use keys::redact_url;
pub(crate) use keys::{KEYS, Reload, changes};
pub use notify::{Destination, EventKind, Format};
pub(crate) use validate::parse_cron;

use parse::Values;

/// Read when no `--config` is given, if it exists.
const DEFAULT_CONFIG_PATH: &str = "/etc/partner-center-sync/config.toml";
/// The Partner Center delegated scope; `user_impersonation` rather than `.default` so
/// MSAL-style cache matching by target works (identity reference, section 1).
const DEFAULT_SCOPE: &str = "https://api.partner.microsoft.com/user_impersonation";

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
    /// Lets `listen` be reachable from the network without `api_token`, for an operator
    /// whose firewall or proxy already guards the port; otherwise that is a config error.
    pub allow_unauthenticated_network: bool,
    /// Host names a reverse proxy may send in `Host`, besides loopback names and the
    /// listen address. Lowercase, IDNA-encoded, without port.
    pub public_hosts: Vec<String>,
    pub api_token: Option<SecretString>,
    pub database_url: Option<SecretString>,
    /// The PostgreSQL schema every table of this daemon lives in (created if missing).
    pub db_schema: String,
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
    /// Where users reach the web UI (`https://sync.example.com`), for links in messages.
    pub public_url: Option<String>,
    /// A New referral expiring within this is announced (once per referral and window).
    pub notify_expiring_within: Duration,
    /// More events than this for one destination in one run become one digest.
    pub notify_digest_over: u32,
    /// No successful run for this long is announced as `sync_stale`.
    pub notify_stale_after: Duration,
    /// A destination failing this many times in a row is reported unhealthy.
    pub notify_unhealthy_after: u32,
    /// The `[[notify]]` destinations.
    pub notify: Vec<Destination>,
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
            allow_unauthenticated_network: false,
            public_hosts: Vec::new(),
            api_token: None,
            database_url: None,
            db_schema: crate::store::DEFAULT_SCHEMA.to_owned(),
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
            public_url: None,
            notify_expiring_within: Duration::from_secs(3 * 86400),
            notify_digest_over: 10,
            notify_stale_after: Duration::from_secs(3600),
            notify_unhealthy_after: 3,
            notify: Vec::new(),
        }
    }
}

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
    /// Unknown `HUNTER_PARTNER_CENTER_*` variables are problems (`config check`), not
    /// just `Loaded::unknown_env` warnings.
    pub strict_env: bool,
}

impl LoadOptions {
    /// Reads the process environment: used by the CLI at start-up and on every SIGHUP.
    pub(crate) fn from_process(path: Option<PathBuf>) -> Self {
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
            strict_env: false,
        }
    }
}

/// A loaded configuration plus where each value came from.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub config: Config,
    pub(crate) sources: BTreeMap<&'static str, Source>,
    pub(crate) file: Option<PathBuf>,
    /// Empty with [`LoadOptions::strict_env`]: then they are problems.
    pub(crate) unknown_env: Vec<UnknownEnv>,
    pub(crate) shadowed: Vec<Shadowed>,
}

/// Loads and validates. Every problem is collected before returning.
pub fn load(opts: &LoadOptions) -> Result<Loaded, ConfigError> {
    let Read {
        config,
        mut values,
        file,
        unknown_env,
        shadowed,
    } = read(opts)?;
    validate::validate(&config, &mut values);
    if values.problems.is_empty() {
        Ok(Loaded {
            config,
            sources: values.sources,
            file,
            unknown_env,
            shadowed,
        })
    } else {
        Err(ConfigError {
            problems: values.problems,
        })
    }
}

/// Everything known before the checks across keys.
struct Read {
    config: Config,
    values: Values,
    file: Option<PathBuf>,
    unknown_env: Vec<UnknownEnv>,
    shadowed: Vec<Shadowed>,
}

/// Layers and parses every key, without the checks across keys.
fn read(opts: &LoadOptions) -> Result<Read, ConfigError> {
    let file = config_file(opts)?;
    let (figment, file_keys) = match &file {
        Some(path) => file_layer(path)?,
        None => (Figment::new(), Vec::new()),
    };
    let (mut values, shadowed) = layer(opts, file.as_deref(), &figment, file_keys);
    let mut unknown_env = env::unknown(&opts.env);
    if opts.strict_env {
        values
            .problems
            .extend(unknown_env.drain(..).map(|u| u.problem()));
    }
    let mut config = Config::default();
    if let Some(dir) = &opts.state_dir {
        config.token_cache = dir.join("msal_token_cache.json");
    }
    for key in KEYS {
        key.read(&mut values, &mut config);
    }
    let env = notify::Env {
        vars: &opts.env,
        credentials_dir: opts.credentials_dir.as_deref(),
        file: file.as_deref(),
    };
    config.notify = notify::read(&figment, &env, &mut values.problems);
    Ok(Read {
        config,
        values,
        file,
        unknown_env,
        shadowed,
    })
}

/// `--config` must exist; the default path is read only if it does.
fn config_file(opts: &LoadOptions) -> Result<Option<PathBuf>, ConfigError> {
    match (&opts.path, &opts.default_path) {
        (Some(p), _) if !p.is_file() => Err(ConfigError {
            problems: vec![Problem {
                key: "--config".into(),
                source: Source::File(p.clone()),
                message: format!("the file {} does not exist or is not a file", p.display()),
                fix: "pass the path of an existing TOML file (see config/partner-center-sync.toml)"
                    .into(),
            }],
        }),
        (Some(p), _) => Ok(Some(p.clone())),
        (None, Some(p)) if p.is_file() => Ok(Some(p.clone())),
        _ => Ok(None),
    }
}

/// The TOML file as a figment layer, and the keys it sets. Invalid syntax stops loading,
/// since no key can be trusted then.
fn file_layer(path: &Path) -> Result<(Figment, Vec<String>), ConfigError> {
    // `file_exact`: `Toml::file` would search parent folders and silently yield nothing.
    let figment = Figment::from(Toml::file_exact(path));
    match figment.extract::<BTreeMap<String, Value>>() {
        Ok(map) => Ok((figment, map.into_keys().collect())),
        Err(e) => Err(ConfigError {
            problems: vec![Problem {
                key: "--config".into(),
                source: Source::File(path.to_owned()),
                message: format!("the file is not valid TOML: {e}"),
                fix: "fix the syntax (see config/partner-center-sync.toml for the format)".into(),
            }],
        }),
    }
}

/// Each key's value from the highest layer that has one: environment over credential
/// file over TOML file over the default, and the file values the environment overrides.
/// Unknown file keys are problems.
fn layer(
    opts: &LoadOptions,
    file: Option<&Path>,
    figment: &Figment,
    file_keys: Vec<String>,
) -> (Values, Vec<Shadowed>) {
    let mut shadowed = Vec::new();
    let file_source = || Source::File(file.map(Path::to_path_buf).unwrap_or_default());
    let mut values = Values {
        raw: BTreeMap::new(),
        sources: BTreeMap::new(),
        problems: Vec::new(),
    };
    for k in file_keys
        .into_iter()
        .filter(|k| k != notify::TABLE && !KEYS.iter().any(|key| key.name == k))
    {
        let hint = keys::closest(&k)
            .map(|c| format!("did you mean `{}` ({}, {})? ", c.name, c.env, c.doc))
            .unwrap_or_default();
        values.problems.push(Problem {
            key: k,
            source: file_source(),
            message: "unknown key".into(),
            fix: format!(
                "{hint}remove it or use one of the keys in config/partner-center-sync.toml"
            ),
        });
    }
    for key in KEYS {
        let mut source = Source::Default;
        if let Ok(v) = figment.find_value(key.name) {
            values.raw.insert(key.name, v);
            source = file_source();
        }
        if let (true, Some(dir)) = (key.is_secret(), &opts.credentials_dir) {
            let p = dir.join(key.name);
            match std::fs::read_to_string(&p) {
                Ok(v) => {
                    let v = v.trim_end_matches(['\n', '\r']).to_owned();
                    values.raw.insert(key.name, Value::from(v));
                    source = Source::Credential(p);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => values.problems.push(Problem::new(
                    key.name,
                    Source::Credential(p),
                    format!("the credential file cannot be read: {e}"),
                    "check LoadCredential= in the unit and the file's permissions",
                )),
            }
        }
        if let Some(v) = opts.env.get(key.env) {
            values.raw.insert(key.name, Value::from(v.clone()));
            if source != Source::Default {
                shadowed.push(Shadowed {
                    key: key.name,
                    variable: key.env,
                    shadowed: source,
                });
            }
            source = Source::Env(key.env.to_owned());
        }
        values.sources.insert(key.name, source);
    }
    (values, shadowed)
}

impl Config {
    /// The database URL, or the problem telling the operator to set it.
    pub fn require_database_url(&self) -> Result<&SecretString, ConfigError> {
        self.database_url.as_ref().ok_or_else(|| ConfigError {
            problems: vec![Problem::new(
                "database_url",
                Source::Default,
                "is not set".into(),
                "set it to postgres://USER:PASSWORD@HOST:PORT/DATABASE, or under systemd put it in the credential file `database_url`",
            )],
        })
    }

    /// Effective values for `config show`, in table order; secrets are redacted, and
    /// this is the only place values are turned into text.
    pub(crate) fn display_values(&self) -> Vec<(&'static str, String)> {
        KEYS.iter().map(|k| (k.name, k.show(self))).collect()
    }

    /// The `[[notify]]` destinations for `config show`, webhook URLs and keys redacted.
    pub(crate) fn notify_display(&self) -> Vec<(String, String)> {
        self.notify
            .iter()
            .enumerate()
            .flat_map(|(i, d)| d.display_lines(i))
            .collect()
    }
}

/// A config file path as given, for messages.
pub(crate) fn describe_file(file: Option<&Path>) -> String {
    file.map_or_else(
        || "(no config file; defaults and environment only)".to_owned(),
        |p| p.display().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

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
    fn redact_url_hides_the_user_info_and_query_passwords() {
        for (raw, shown) in [
            (
                "postgres://u:pw1@h/db?sslmode=require&password=pw2&sslPassword=pw3",
                "postgres://u:redacted@h/db?sslmode=require&password=redacted&sslPassword=redacted",
            ),
            (
                "postgres://h/db?pass%77ord=pw4",
                "postgres://h/db?pass%77ord=redacted",
            ),
            (
                "postgres://u@h:5433/db?sslmode=disable",
                "postgres://u@h:5433/db?sslmode=disable",
            ),
            ("not a url", "[unparseable]"),
        ] {
            assert_eq!(redact_url(raw), shown);
        }
    }

    #[test]
    fn listen_on_the_network_needs_a_token_or_the_opt_out() {
        for (env, ok) in [
            (vec![("HUNTER_PARTNER_CENTER_LISTEN", "[::1]:8000")], true),
            (
                vec![("HUNTER_PARTNER_CENTER_LISTEN", "[::ffff:127.0.0.1]:8000")],
                true,
            ),
            (
                vec![("HUNTER_PARTNER_CENTER_LISTEN", "10.0.0.5:8000")],
                false,
            ),
            (
                vec![
                    ("HUNTER_PARTNER_CENTER_LISTEN", "10.0.0.5:8000"),
                    ("HUNTER_PARTNER_CENTER_ALLOW_UNAUTHENTICATED_NETWORK", "yes"),
                ],
                true,
            ),
        ] {
            let (o, _d) = opts(&env, None);
            assert_eq!(load(&o).is_ok(), ok, "{env:?}");
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
