//! Command-line interface: parse, load config, dispatch, and map errors to the
//! documented exit codes (README "Exit codes").
//!
//! - `generate.rs`: the completions and man pages the Debian package installs.

mod generate;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::config::{self, ConfigError, LoadOptions, Loaded};
use crate::daemon::{Daemon, DaemonError};
use crate::telemetry::LogHandle;
use crate::{auth, store};

/// Exit codes, following sysexits.h where one fits.
pub mod exit {
    pub const OK: u8 = 0;
    /// A runtime failure: the message says what failed.
    pub const FAILURE: u8 = 1;
    /// Bad command-line usage (clap's own code).
    pub const USAGE: u8 = 2;
    /// Temporary: e.g. another sync holds the lock; retry later.
    pub const TEMPFAIL: u8 = 75;
    /// Sign-in required: run `partner-center-sync login`.
    pub const SIGN_IN_REQUIRED: u8 = 77;
    /// Configuration error: the message names the key and the fix.
    pub const CONFIG: u8 = 78;
}

#[derive(Debug, Parser)]
#[command(
    name = "partner-center-sync",
    version,
    about = "Keeps a PostgreSQL copy of Microsoft Partner Center referrals fresh."
)]
pub struct Cli {
    /// TOML config file; without it /etc/partner-center-sync/config.toml is read if it exists.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check or show the effective configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Apply database migrations (a no-op when the schema is current).
    Migrate,
    /// Sign in once with the device code flow; the daemon then refreshes silently.
    Login {
        /// Sign in again even when the saved login still works.
        #[arg(long)]
        force: bool,
    },
    /// Remove this client's login from the token cache; other apps' entries stay.
    Logout,
    /// Run one sync now and print its summary.
    Sync(SyncArgs),
    /// Run the daemon: scheduler, sync worker, HTTP API and UI (what systemd starts).
    Run,
    /// Everything on one machine: database, emulated Partner Center, sign-in, daemon, UI.
    Demo(crate::demo::DemoArgs),
    /// Sign-in state, the last sync runs and, when it runs, the daemon's health.
    Status {
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// Read every referral (and mark those Partner Center no longer returns) instead of
    /// only those updated since the last run.
    #[arg(long)]
    pub full: bool,
    /// Fetch and report what would change, writing nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Read referrals updated since this RFC 3339 time (e.g. 2026-01-31T00:00:00Z).
    #[arg(long, value_name = "TIMESTAMP", value_parser = parse_since)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Print the run summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

fn parse_since(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| {
            format!("`{s}` is not an RFC 3339 timestamp ({e}); write e.g. 2026-01-31T00:00:00Z")
        })
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate; exit 0, or 78 listing every problem.
    Check,
    /// Print each effective value and where it came from; secrets are redacted.
    Show,
}

/// A failed command: its message and exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl std::fmt::Display) -> Self {
        Self {
            code,
            message: message.to_string(),
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Self::new(exit::CONFIG, e)
    }
}

impl From<auth::AuthError> for Failure {
    fn from(e: auth::AuthError) -> Self {
        Self::new(e.exit_code(), e)
    }
}

impl From<store::StoreError> for Failure {
    fn from(e: store::StoreError) -> Self {
        Self::new(exit::FAILURE, e)
    }
}

pub fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    if generate::requested(&args) {
        return generate::main(args);
    }
    let cli = Cli::parse_from(args);
    let mut options = LoadOptions::from_process(cli.config.clone());
    options.strict_env = matches!(cli.command, Command::Config(ConfigCommand::Check));
    let loaded = match config::load(&options) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let log = crate::telemetry::init(loaded.config.log_format, &loaded.config.log_level);
    loaded.warn_unknown_env();
    // One sync at a time and an API that waits on the database need few threads; a
    // worker per core would only grow the idle footprint on large hosts (docs/idle.md).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    match runtime.block_on(dispatch(cli, loaded, options, log)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("{}", f.message);
            ExitCode::from(f.code)
        }
    }
}

async fn dispatch(
    cli: Cli,
    loaded: Loaded,
    options: LoadOptions,
    log: LogHandle,
) -> Result<(), Failure> {
    match cli.command {
        Command::Config(ConfigCommand::Check) => {
            // Commands that talk to the database need it; `check` validates for the daemon.
            loaded.config.require_database_url()?;
            println!(
                "Configuration is valid (file: {}).",
                config::describe_file(loaded.file.as_deref())
            );
            Ok(())
        }
        Command::Config(ConfigCommand::Show) => {
            println!("# file: {}", config::describe_file(loaded.file.as_deref()));
            for (key, value) in loaded.config.display_values() {
                let source = loaded
                    .sources
                    .get(key)
                    .map(ToString::to_string)
                    .unwrap_or_default();
                println!("{key} = {value}  # {source}");
            }
            Ok(())
        }
        Command::Migrate => {
            let pool = store::connect(loaded.config.require_database_url()?).await?;
            let applied = store::migrate(&pool).await?;
            println!("Applied {applied} migration(s); the schema is current.");
            Ok(())
        }
        Command::Login { force } => {
            // Microsoft's instructions go to stderr from `login`; the result to stdout.
            println!("{}", auth::login(&loaded.config, force).await?);
            Ok(())
        }
        Command::Logout => {
            println!("{}", auth::logout(&loaded.config)?);
            Ok(())
        }
        Command::Sync(args) => {
            let opts = crate::sync::CliOptions {
                full: args.full,
                dry_run: args.dry_run,
                since: args.since,
                show_progress: !args.json,
            };
            let summary = crate::sync::run_cli(Arc::new(loaded.config), opts)
                .await
                .map_err(|e| Failure::new(e.exit_code(), e))?;
            if args.json {
                let json = serde_json::to_string_pretty(&summary)
                    .map_err(|e| Failure::new(exit::FAILURE, e))?;
                println!("{json}");
            } else {
                println!("{summary}");
            }
            Ok(())
        }
        Command::Demo(args) => crate::demo::run(args, &loaded.config)
            .await
            .map_err(|e| Failure::new(exit::FAILURE, e)),
        Command::Status { json } => status(&loaded.config, json).await,
        Command::Run => {
            loaded.warn_shadowed_keys();
            let daemon = Daemon::build(loaded.config, Some(options), Some(log))
                .await
                .map_err(|e| Failure::new(daemon_exit_code(&e), e))?;
            daemon
                .run_until(std::future::pending())
                .await
                .map_err(|e| Failure::new(daemon_exit_code(&e), e))
        }
    }
}

fn daemon_exit_code(e: &DaemonError) -> u8 {
    match e {
        DaemonError::Config(_) => exit::CONFIG,
        DaemonError::Auth(a) if a.is_sign_in_required() => exit::SIGN_IN_REQUIRED,
        DaemonError::Auth(crate::auth::AuthError::Configuration { .. }) => exit::CONFIG,
        _ => exit::FAILURE,
    }
}

/// Each part is best effort: a stopped daemon or an unreachable database is reported,
/// not fatal, so `status` works when something is wrong, which is when it is needed.
/// Exits 77 when a sign-in is required, so scripts can alert on it.
async fn status(config: &config::Config, json: bool) -> Result<(), Failure> {
    let auth = if config.client_id.is_some() && config.tenant_id.is_some() {
        Some(auth::status(config))
    } else {
        None
    };
    let runs = match &config.database_url {
        Some(url) => match store::connect(url).await {
            Ok(pool) => {
                let runs = store::runs::list(&pool, &[], 5).await;
                pool.close().await;
                runs.map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        },
        None => Err("database_url is not set".to_owned()),
    };
    let health = daemon_health(config).await;
    let sign_in_required = matches!(&auth, Some(Ok(r)) if r.sign_in_required)
        || matches!(&auth, Some(Err(e)) if e.is_sign_in_required());
    if json {
        let value = serde_json::json!({
            "partner_center_enabled": config.enabled,
            "auth": match &auth {
                Some(Ok(r)) => serde_json::to_value(r).unwrap_or_default(),
                Some(Err(e)) => serde_json::json!({"error": e.to_string()}),
                None => serde_json::json!({"error": "client_id and tenant_id are not configured"}),
            },
            "runs": match &runs {
                Ok(r) => serde_json::to_value(r).unwrap_or_default(),
                Err(e) => serde_json::json!({"error": e}),
            },
            "daemon": health.as_ref().map_or_else(|e| serde_json::json!({"running": false, "error": e}), |h| h.clone()),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).map_err(|e| Failure::new(exit::FAILURE, e))?
        );
    } else {
        println!(
            "Partner Center integration: {}",
            if config.enabled {
                "enabled"
            } else {
                "disabled"
            }
        );
        match &auth {
            Some(Ok(r)) => println!("{r}"),
            Some(Err(e)) => println!("Sign-in: {e}"),
            None => println!("Sign-in: not configured (set client_id and tenant_id)"),
        }
        match &runs {
            Ok(rows) if rows.is_empty() => println!("Runs: none yet"),
            Ok(rows) => {
                println!("Last runs:");
                for r in rows {
                    println!(
                        "  #{} {} {} {} queued {} fetched {} inserted {} updated {}{}",
                        r.id,
                        r.trigger,
                        r.mode,
                        r.status,
                        r.queued_at.format("%Y-%m-%d %H:%M:%S UTC"),
                        r.fetched,
                        r.inserted,
                        r.updated,
                        r.error
                            .as_deref()
                            .map(|e| format!(" error: {e}"))
                            .unwrap_or_default()
                    );
                }
            }
            Err(e) => println!("Runs: unavailable ({e})"),
        }
        match &health {
            Ok(h) => println!(
                "Daemon: running at http://{} (database reachable: {}, next run: {})",
                config.listen,
                h["database"]["reachable"],
                h["next_run_at"].as_str().unwrap_or("none")
            ),
            Err(e) => println!("Daemon: not reachable at http://{} ({e})", config.listen),
        }
    }
    if sign_in_required {
        return Err(Failure::new(
            exit::SIGN_IN_REQUIRED,
            "Sign-in required: run `partner-center-sync login`.",
        ));
    }
    Ok(())
}

async fn daemon_health(config: &config::Config) -> Result<serde_json::Value, String> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(format!("http://{}/healthz", config.listen))
        .send()
        .await
        .map_err(|e| {
            if e.is_connect() {
                "not running".to_owned()
            } else {
                e.to_string()
            }
        })?;
    response.json().await.map_err(|e| e.to_string())
}
