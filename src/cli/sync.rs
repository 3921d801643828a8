//! `sync`: one run from the command line.

use std::io::IsTerminal;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{CommandError, Exit, SyncArgs};
use crate::auth::TokenProvider;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store;
use crate::sync::{
    Progress, RequestedMode, RunRequest, RunSummary, SyncEngine, SyncError, Trigger,
};
use crate::telemetry::status_line;

/// `sync`: one run with trigger `cli`, then its summary as text or `--json`.
pub(super) async fn run(config: Arc<Config>, args: SyncArgs) -> Result<(), CommandError> {
    let summary = run_once(config, &args).await?;
    if args.json {
        let json = serde_json::to_string_pretty(&summary)
            .map_err(|e| CommandError::new(Exit::Failure, e))?;
        println!("{json}");
    } else {
        println!("{summary}");
    }
    Ok(())
}

/// Ctrl-C cancels the run cleanly. With the feature flag off it touches nothing (not even
/// the database) and succeeds. Progress goes to stderr when that is a terminal and stdout
/// is not reserved for `--json`.
async fn run_once(config: Arc<Config>, args: &SyncArgs) -> Result<RunSummary, SyncError> {
    if !config.enabled {
        tracing::info!(
            event = "feature_flag_disabled",
            "The Partner Center integration is disabled; not syncing."
        );
        return Ok(RunSummary::disabled(Trigger::Cli));
    }
    let pool = store::connect(config.require_database_url()?, &config.db_schema).await?;
    store::migrate(&pool).await?;
    let http = crate::outbound::http_client(&config).map_err(SyncError::Http)?;
    let tokens = TokenProvider::new(&config, http)?;
    let engine = SyncEngine::new(config, pool.clone(), tokens, Metrics::new())?;
    let cancel = CancellationToken::new();
    let on_ctrl_c = cancel.clone();
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_ctrl_c.cancel();
        }
    });
    let (progress, printer) = if !args.json && std::io::stderr().is_terminal() {
        let (tx, rx) = watch::channel(Progress::default());
        (Some(tx), Some(tokio::spawn(print_progress(rx))))
    } else {
        (None, None)
    };
    let request = RunRequest {
        run_id: None,
        trigger: Trigger::Cli,
        mode: if args.full {
            RequestedMode::Full
        } else {
            RequestedMode::Auto
        },
        dry_run: args.dry_run,
        since: args.since,
        progress,
    };
    let result = engine.run(request, cancel).await;
    ctrl_c.abort();
    if let Some(p) = printer {
        let _ = p.await;
        status_line::clear();
    }
    pool.close().await;
    result
}

/// Redraws the status line as batches commit; ends when the run drops its sender. Log
/// records clear it before they are written and it is drawn again below them.
async fn print_progress(mut rx: watch::Receiver<Progress>) {
    while rx.changed().await.is_ok() {
        let p = rx.borrow_and_update().clone();
        let rate = if p.elapsed_secs > 0.0 {
            p.fetched as f64 / p.elapsed_secs
        } else {
            0.0
        };
        status_line::show(&format!(
            "{} pages, {} referrals, {rate:.0}/s",
            p.pages, p.fetched
        ));
    }
}
