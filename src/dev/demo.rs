//! `partner-center-sync demo`: the whole system on one machine with one command.
//!
//! A database (`DATABASE_URL`, else the local server on 5432, else a throwaway cluster),
//! the bundled emulator with a realistic dataset, an auto-approved device-code sign-in
//! into a temporary token cache, and the real daemon with a 30 s schedule. The emulator's
//! activity moves referrals on every 20 s (accepted, won, lost, revised, new arrivals), so
//! the history fills up, and notifications go to the demo's inbox (`inbox.rs`), a local
//! webhook receiver the UI's Notifications tab shows.
//! Ctrl-C stops the daemon cleanly and removes everything the demo created.

use std::net::SocketAddr;
use std::time::Duration;

use pc_emulator::{Activity, Emulator, EmulatorConfig};
use secrecy::SecretString;
use sqlx::Executor;
use sqlx::postgres::PgPoolOptions;

use super::devdb::DatabaseChoice;
use super::inbox::Inbox;
use crate::config::Config;
use crate::daemon::Daemon;

/// The demo's database on a shared local server, so it never touches other data.
const DEMO_DATABASE: &str = "partner_center_sync_demo";
/// How often the emulator changes some referrals.
const ACTIVITY_EVERY: Duration = Duration::from_secs(20);
/// Referrals each round of activity changes.
const ACTIVITY_CHANGES: usize = 3;

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DemoArgs {
    /// Referrals in the emulated Partner Center.
    #[arg(long, default_value_t = 739)]
    pub referrals: usize,
    /// Dataset seed (the same seed gives the same referrals).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Where the web UI listens.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// Seconds between scheduled syncs.
    #[arg(long, default_value_t = 30)]
    pub interval: u64,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum DemoError {
    #[error(transparent)]
    Database(#[from] super::devdb::DevDbError),
    #[error("Cannot prepare the demo database: {0}")]
    Prepare(#[from] sqlx::Error),
    #[error("Cannot start the Partner Center emulator: {0}")]
    Emulator(anyhow::Error),
    #[error("Cannot create the temporary token cache directory: {0}")]
    TempDir(std::io::Error),
    #[error("Cannot start the demo's notification inbox on 127.0.0.1: {0}")]
    Inbox(std::io::Error),
    #[error("The demo sign-in failed: {0}")]
    Login(#[from] crate::auth::AuthError),
    #[error(transparent)]
    Daemon(#[from] crate::daemon::DaemonError),
}

pub(crate) async fn run(args: DemoArgs, base: &Config) -> Result<(), DemoError> {
    // First, while a failure leaves nothing behind to clean up.
    let inbox = Inbox::start().await.map_err(DemoError::Inbox)?;
    let choice = DatabaseChoice::pick()?;
    let user_database = std::env::var("DATABASE_URL").is_ok_and(|u| !u.is_empty());
    let database_url = match &choice {
        DatabaseChoice::Existing(url) if user_database => url.clone(),
        other => dedicated_database(&other.url()).await?,
    };
    // On the local server the demo's database is dropped at the end; a throwaway cluster
    // goes away whole; DATABASE_URL is the user's own and is kept.
    let shared_server = match &choice {
        DatabaseChoice::Existing(url) if !user_database => Some(url.clone()),
        _ => None,
    };
    eprintln!("Database: {}", crate::config::redact_url(&database_url));

    let emulator = Emulator::start(EmulatorConfig {
        referrals: args.referrals,
        seed: args.seed,
        auto_approve_after: Some(1),
        activity: Some(Activity {
            every: Some(ACTIVITY_EVERY),
            changes: ACTIVITY_CHANGES,
        }),
        ..EmulatorConfig::default()
    })
    .await
    .map_err(DemoError::Emulator)?;
    eprintln!(
        "Partner Center emulator: {} ({} referrals)",
        emulator.base_url(),
        args.referrals
    );

    let cache_dir =
        std::env::temp_dir().join(format!("pcs-demo-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&cache_dir).map_err(DemoError::TempDir)?;
    let config = Config {
        enabled: true,
        client_id: Some(emulator.client_id()),
        tenant_id: Some(emulator.tenant_id()),
        api_url: url::Url::parse(&emulator.api_url()).map_err(|e| DemoError::Emulator(e.into()))?,
        authority_url: url::Url::parse(&emulator.authority_url())
            .map_err(|e| DemoError::Emulator(e.into()))?,
        token_cache: cache_dir.join("msal_token_cache.json"),
        sync_interval: Duration::from_secs(args.interval),
        sync_cron: None,
        listen: args.listen,
        database_url: Some(SecretString::from(database_url)),
        // `api_token` comes from the configuration: unset by default, so the UI asks
        // for nothing; `scripts/api-fuzz` sets it to test the API with and without it.
        // Links in messages lead to this demo's page (unknown ahead when the port is 0).
        public_url: (args.listen.port() != 0)
            .then(|| format!("http://{}/", args.listen))
            .or_else(|| base.public_url.clone()),
        notify: vec![inbox.destination()],
        ..base.clone()
    };

    let result = async {
        eprintln!(
            "Signing in with the device code flow (the emulator approves it automatically)..."
        );
        let outcome = crate::auth::login(&config, false).await?;
        eprintln!("{outcome}");
        let daemon = Daemon::build(config, None, None)
            .await?
            .with_routes(inbox.routes());
        let addr = daemon.local_addr();
        eprintln!();
        eprintln!(
            "Open http://{addr}/ (syncs every {} s; referrals change in the emulator every {} s).",
            args.interval,
            ACTIVITY_EVERY.as_secs()
        );
        eprintln!(
            "Notifications go to the demo inbox, a local webhook receiver: see the Notifications tab."
        );
        eprintln!("Press Ctrl-C to stop; the demo removes what it created.");
        daemon
            .run_until(std::future::pending())
            .await
            .map_err(DemoError::from)
    }
    .await;

    emulator.shutdown().await;
    if let Err(e) = std::fs::remove_dir_all(&cache_dir) {
        eprintln!("Could not remove {}: {e}", cache_dir.display());
    }
    if let Some(server) = &shared_server
        && let Err(e) = drop_dedicated_database(server).await
    {
        eprintln!("Could not drop the demo database {DEMO_DATABASE}: {e}");
    }
    drop(choice);
    eprintln!("Demo stopped and cleaned up.");
    result
}

/// A fresh database of the demo's own on a shared server.
async fn dedicated_database(server_url: &str) -> Result<String, DemoError> {
    drop_dedicated_database(server_url).await?;
    on_server(server_url, format!("CREATE DATABASE {DEMO_DATABASE}")).await?;
    let mut url = url::Url::parse(server_url).map_err(|e| DemoError::Emulator(e.into()))?;
    url.set_path(&format!("/{DEMO_DATABASE}"));
    Ok(url.to_string())
}

async fn drop_dedicated_database(server_url: &str) -> Result<(), sqlx::Error> {
    on_server(
        server_url,
        format!("DROP DATABASE IF EXISTS {DEMO_DATABASE} WITH (FORCE)"),
    )
    .await
}

/// Runs one statement on the server's maintenance database.
async fn on_server(server_url: &str, sql: String) -> Result<(), sqlx::Error> {
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(server_url)
        .await?;
    admin.execute(sqlx::AssertSqlSafe(sql)).await?;
    admin.close().await;
    Ok(())
}
