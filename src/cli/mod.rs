//! Command-line interface: parse, load config, dispatch, and map errors to the
//! documented exit codes (README "Exit codes", the table in `Exit`).
//!
//! - `sync.rs`: `sync`: one run with progress on a terminal, Ctrl-C cancelling it.
//! - `status.rs`: `status`: sign-in, the last runs and the daemon's health.
//! - `export.rs`: `export`: the filtered referrals as CSV or JSON lines on stdout.
//! - `generate.rs`: the completions and man pages the Debian package installs.

mod export;
mod generate;
mod status;
mod sync;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::config::{self, ConfigError, LoadOptions, Loaded};
use crate::daemon::{Daemon, DaemonError};
use crate::telemetry::LogHandle;
use crate::{auth, store};

use crate::exit::Exit;

#[derive(Debug, Parser)]
#[command(
    name = "partner-center-sync",
    version,
    about = "Keeps a PostgreSQL copy of Microsoft Partner Center referrals fresh."
)]
struct Cli {
    /// TOML config file; without it /etc/partner-center-sync/config.toml is read if it exists.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check or show the effective configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Apply database migrations (a no-op when the schema is current).
    Migrate {
        /// Rename an existing `partner_center_referrals` these migrations did not create
        /// (the old integration's) to `partner_center_referrals_legacy`, keeping its rows,
        /// and create ours; the next sync is full.
        #[arg(long)]
        adopt_legacy: bool,
    },
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
    #[cfg(feature = "dev")]
    Demo(crate::dev::demo::DemoArgs),
    /// Every referral matching the filters on stdout, as CSV or JSON lines (the HTTP API's
    /// filters; list filters repeat or take comma-separated values).
    Export(Box<export::ExportArgs>),
    /// Notification destinations (`[[notify]]` in the config file).
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Sign-in state, the last sync runs and, when it runs, the daemon's health.
    Status {
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
struct SyncArgs {
    /// Read every referral (and mark those Partner Center no longer returns) instead of
    /// only those updated since the last run. A full pass reads everything, so it takes
    /// no `--since`.
    #[arg(long, conflicts_with = "since")]
    pub full: bool,
    /// Fetch and report what would change, writing nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Read referrals updated since this RFC 3339 time (e.g. 2026-01-31T00:00:00Z) or
    /// date (midnight UTC).
    #[arg(long, value_name = "TIMESTAMP", value_parser = crate::sync::parse_since)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Print the run summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate; exit 0, or 78 listing every problem.
    Check,
    /// Print each effective value and where it came from; secrets are redacted.
    Show,
}

#[derive(Debug, Subcommand)]
enum NotifyCommand {
    /// Send one sample of each event to the destination NAME, in its format.
    Test {
        /// The `name` of a [[notify]] table.
        name: String,
    },
}

/// A command that failed: what to print, and the exit code to end with.
#[derive(Debug)]
struct CommandError {
    pub exit: Exit,
    pub message: String,
}

impl CommandError {
    fn new(exit: Exit, message: impl std::fmt::Display) -> Self {
        Self {
            exit,
            message: message.to_string(),
        }
    }
}

impl From<ConfigError> for CommandError {
    fn from(e: ConfigError) -> Self {
        Self::new(Exit::Config, e)
    }
}

impl From<auth::AuthError> for CommandError {
    fn from(e: auth::AuthError) -> Self {
        Self::new(e.exit(), e)
    }
}

impl From<store::StoreError> for CommandError {
    fn from(e: store::StoreError) -> Self {
        Self::new(e.exit(), e)
    }
}

impl From<crate::sync::SyncError> for CommandError {
    fn from(e: crate::sync::SyncError) -> Self {
        Self::new(e.exit(), e)
    }
}

impl From<DaemonError> for CommandError {
    fn from(e: DaemonError) -> Self {
        let exit = match &e {
            DaemonError::Config(_) => Exit::Config,
            DaemonError::Auth(a) => a.exit(),
            DaemonError::Store(s) => s.exit(),
            _ => Exit::Failure,
        };
        Self::new(exit, e)
    }
}

pub fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    if generate::requested(&args) {
        return generate::main(args);
    }
    let cli = Cli::parse_from(args);
    if matches!(cli.command, Command::Status { .. } | Command::Config(_)) {
        // Commands that only print: `status | head` ends them quietly, as any Unix tool,
        // instead of `println!` panicking on the closed pipe. Not for the daemon or a sync,
        // which must never die of a closed stdout.
        // SAFETY: called before any thread exists; resets one signal's disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let mut options = LoadOptions::from_process(cli.config.clone());
    options.strict_env = matches!(cli.command, Command::Config(ConfigCommand::Check));
    let loaded = match config::load(&options) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e}");
            return Exit::Config.into();
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
            return Exit::Failure.into();
        }
    };
    match runtime.block_on(dispatch(cli, loaded, options, log)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", e.message);
            e.exit.into()
        }
    }
}

async fn dispatch(
    cli: Cli,
    loaded: Loaded,
    options: LoadOptions,
    log: LogHandle,
) -> Result<(), CommandError> {
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
            for (key, value) in loaded.config.notify_display() {
                println!("{key} = {value}  # file");
            }
            Ok(())
        }
        Command::Migrate { adopt_legacy } => {
            let config = &loaded.config;
            let pool = store::connect(config.require_database_url()?, &config.db_schema).await?;
            let on_legacy = if adopt_legacy {
                store::OnLegacy::Adopt
            } else {
                store::OnLegacy::Refuse
            };
            let migrated = store::migrate_with(&pool, on_legacy).await?;
            pool.close().await;
            print_migrated(&migrated, adopt_legacy, &config.db_schema);
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
        Command::Sync(args) => sync::run(Arc::new(loaded.config), args).await,
        #[cfg(feature = "dev")]
        Command::Demo(args) => crate::dev::demo::run(args, &loaded.config)
            .await
            .map_err(|e| CommandError::new(Exit::Failure, e)),
        Command::Export(args) => export::run(&loaded.config, *args).await,
        Command::Status { json } => status::run(&loaded.config, json).await,
        Command::Notify(NotifyCommand::Test { name }) => {
            use crate::notify::test_send::{TestSendError, run};
            match run(&loaded.config, &name).await {
                Ok(lines) => {
                    for line in lines {
                        println!("{line}");
                    }
                    Ok(())
                }
                Err(e @ TestSendError::UnknownDestination { .. }) => {
                    Err(CommandError::new(Exit::Config, e))
                }
                Err(e) => {
                    if let TestSendError::Refused { lines, .. } = &e {
                        for line in lines {
                            println!("{line}");
                        }
                    }
                    Err(CommandError::new(Exit::Failure, e))
                }
            }
        }
        Command::Run => {
            loaded.warn_shadowed_keys();
            let daemon = Daemon::build(loaded.config, Some(options), Some(log)).await?;
            Ok(daemon.run_until(std::future::pending()).await?)
        }
    }
}

/// `migrate`'s report: what changed, so an operator adopting a table can compare counts.
fn print_migrated(migrated: &store::Migrated, adopt_legacy: bool, schema: &str) {
    if migrated.upgraded {
        println!(
            "Renamed the tables of an earlier version to their partner_center_ names; every row is kept."
        );
    }
    match migrated.adopted_legacy_rows {
        Some(rows) => println!(
            "Renamed the old partner_center_referrals to partner_center_referrals_legacy ({rows} rows kept). The next sync is full; compare its referral count with {rows}."
        ),
        None if adopt_legacy => {
            println!(
                "No partner_center_referrals of another integration was found; nothing to adopt."
            )
        }
        None => {}
    }
    println!(
        "Applied {} migration(s); the schema `{schema}` is current.",
        migrated.applied
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_exit_with_the_table_code() {
        let err = Cli::try_parse_from(["partner-center-sync", "--no-such-flag"])
            .expect_err("an unknown flag");
        assert_eq!(err.exit_code(), i32::from(Exit::Usage.code()));
        let err = Cli::try_parse_from(["partner-center-sync", "sync", "--since", "soon"])
            .expect_err("not a time");
        assert!(
            err.to_string()
                .contains("`soon` is not an RFC 3339 timestamp"),
            "{err}"
        );
        let ok = Cli::try_parse_from(["partner-center-sync", "sync", "--since", "2026-01-31"])
            .expect("a date is midnight UTC");
        let Command::Sync(args) = ok.command else {
            panic!("parsed as sync");
        };
        assert_eq!(
            args.since.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-01-31T00:00:00+00:00")
        );
        let err = Cli::try_parse_from([
            "partner-center-sync",
            "sync",
            "--full",
            "--since",
            "2026-01-31",
        ])
        .expect_err("a full pass takes no --since");
        assert_eq!(err.exit_code(), i32::from(Exit::Usage.code()));
        assert!(
            err.to_string()
                .contains("'--full' cannot be used with '--since <TIMESTAMP>'"),
            "{err}"
        );
    }
}
