//! Command-line interface: parse, dispatch, and map errors to the documented exit codes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::config::{self, LoadOptions};

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
    /// Run one sync now: incremental, or full with --full.
    Sync(crate::sync::SyncArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let loaded = match config::load(&LoadOptions::from_process(cli.config.clone())) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(78);
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&loaded.config.log_level))
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let config = Arc::new(loaded.config);
    let code = runtime.block_on(async {
        match &cli.command {
            Command::Sync(args) => crate::sync::command(config, args).await,
        }
    });
    ExitCode::from(code)
}
