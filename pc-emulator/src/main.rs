//! `pc-emulator`: run the emulator by hand or for the demo. Prints its URLs and ids as
//! `key=value` lines on stdout (easy to read from a script), logs requests to stderr, and stops on
//! Ctrl-C or SIGTERM.

use std::io::{IsTerminal as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use pc_emulator::{Activity, Emulator, EmulatorConfig, FaultSpec};
use tracing_subscriber::EnvFilter;

/// Loopback emulator of the Microsoft identity platform and the Partner Center Referrals API.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Number of referrals to generate (0 to 1,000,000).
    #[arg(long, default_value_t = 1000)]
    referrals: usize,
    /// Seed of the dataset, ids, mutations and probabilistic faults.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Faults to inject into the referrals API, e.g. `429:every=5:retry_after=1,reset:every=9`.
    #[arg(long, default_value = "")]
    faults: FaultSpec,
    /// Approve each device code by itself after this many polls (no human needed).
    #[arg(long)]
    auto_approve_after: Option<u32>,
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Serve https with a certificate made at start; the CA to trust is written to a file
    /// printed as `ca_cert=PATH` and removed at stop.
    #[arg(long)]
    tls: bool,
    /// Emit `@odata.nextLink` in the documented odd form (http, no `/engagements`).
    #[arg(long)]
    quirky_next_link: bool,
    /// Refuse `$filter` on `updatedDateTime` with 400, forcing clients onto full listings.
    #[arg(long)]
    refuse_updated_filter: bool,
    /// Serve hostile referrals (NUL characters, over-long ids and values) on the first page.
    #[arg(long)]
    poison_referrals: bool,
    /// Let the tenant live: New referrals re-dated to expire days ahead, and a round of
    /// changes (accepted, won, lost, value revised, new arrivals, expiries) every SECONDS;
    /// 0 runs rounds only on `POST /_emulator/activity`.
    #[arg(long, value_name = "SECONDS")]
    activity: Option<u64>,
    /// Changes per round of activity.
    #[arg(long, default_value_t = 3)]
    activity_changes: usize,
    /// Seconds a client must wait between device-code polls (Entra: 5).
    #[arg(long, default_value_t = 5)]
    device_code_interval: u64,
    /// Lifetime of access tokens in seconds.
    #[arg(long, default_value_t = 3600)]
    access_token_lifetime: u64,
    /// Register the app as a confidential client with this secret.
    #[arg(long)]
    client_secret: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let config = EmulatorConfig {
        referrals: cli.referrals,
        seed: cli.seed,
        faults: cli.faults,
        auto_approve_after: cli.auto_approve_after,
        access_token_lifetime: Duration::from_secs(cli.access_token_lifetime),
        quirky_next_link: cli.quirky_next_link,
        refuse_updated_filter: cli.refuse_updated_filter,
        poison_referrals: cli.poison_referrals,
        activity: cli.activity.map(|secs| Activity {
            every: (secs > 0).then(|| Duration::from_secs(secs)),
            changes: cli.activity_changes,
        }),
        port: cli.port,
        tls: cli.tls,
        device_code_interval_secs: cli.device_code_interval,
        client_secret: cli.client_secret,
        ..EmulatorConfig::default()
    };
    let faults = config.faults.to_string();
    let emulator = match Emulator::start(config).await {
        Ok(emulator) => emulator,
        Err(e) => {
            eprintln!("pc-emulator could not start: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let ca_cert = match emulator
        .ca_certificate_pem()
        .map(|pem| write_ca(&emulator, pem))
    {
        None => None,
        Some(Ok(path)) => Some(path),
        Some(Err(e)) => {
            eprintln!("pc-emulator could not write its CA certificate: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let printed = writeln!(
        out,
        "base_url={}\nauthority_url={}\napi_url={}\ntenant_id={}\nclient_id={}\ncontrol_url={}/_emulator",
        emulator.base_url(),
        emulator.authority_url(),
        emulator.api_url(),
        emulator.tenant_id(),
        emulator.client_id(),
        emulator.base_url(),
    )
    .and_then(|()| match &ca_cert {
        Some(path) => writeln!(out, "ca_cert={}", path.display()),
        None => Ok(()),
    })
    .and_then(|()| out.flush());
    drop(out);
    if let Err(e) = printed {
        eprintln!("pc-emulator could not print its URLs: {e}");
        return ExitCode::FAILURE;
    }
    tracing::info!(
        referrals = emulator.referral_count(),
        faults,
        "The emulator is serving; stop it with Ctrl-C."
    );
    wait_for_stop().await;
    tracing::info!("Stopping the emulator.");
    emulator.shutdown().await;
    if let Some(path) = ca_cert {
        remove_ca(&path);
    }
    ExitCode::SUCCESS
}

/// Writes the CA to `pc-emulator-PORT-ca.pem` in the temporary directory. The port makes the
/// name unique among running emulators; a file left by one that was killed is replaced, never
/// followed if it is a link.
fn write_ca(emulator: &Emulator, pem: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::temp_dir().join(format!(
        "pc-emulator-{}-ca.pem",
        emulator.local_addr().port()
    ));
    remove_ca(&path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&path)
        .and_then(|mut file| file.write_all(pem.as_bytes()))
        .with_context(|| format!("could not write {}", path.display()))?;
    Ok(path)
}

/// The certificate is worthless once this run stops, so it does not outlive it.
fn remove_ca(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "Could not remove the CA certificate file.");
    }
}

/// Ctrl-C or SIGTERM (what scripts and service managers send).
async fn wait_for_stop() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!(error = %e, "Cannot watch SIGTERM; only Ctrl-C stops the emulator.");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
