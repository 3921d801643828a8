//! Sync throughput and memory: `cargo bench --bench sync` (not part of `cargo test`).
//!
//! For each dataset size (default 10,000 and 100,000; `BENCH_SIZES=1000,5000` to change):
//! a full sync from an empty table, then an incremental run after 1% of the referrals
//! changed, then, as the yardstick, PostgreSQL's own `COPY` of the same rows into the
//! same (empty, fully indexed) table twice: once with the server's default settings (pglz
//! for the payload), once as `migrate` leaves it (lz4 where the server has it).
//!
//! Three processes keep the memory figure honest: this orchestrator; the emulator
//! (`--serve-emulator`), whose dataset would otherwise count against the sync; and the
//! worker (`--worker`), which runs only the sync engine and reports its own peak RSS
//! (`VmHWM` from /proc/self/status).

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use partner_center_sync::auth::TokenProvider;
use partner_center_sync::config::{self, Config, LoadOptions};
use partner_center_sync::metrics::Metrics;
use partner_center_sync::sync::{RequestedMode, RunRequest, SyncEngine, Trigger};
use pc_emulator::{Emulator, EmulatorConfig};
use secrecy::SecretString;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout, Command};

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.get(1).map(String::as_str) {
        Some("--serve-emulator") => runtime.block_on(serve_emulator(
            args.get(2).and_then(|n| n.parse().ok()).unwrap_or(100_000),
        )),
        Some("--worker") => runtime.block_on(worker()),
        _ => runtime.block_on(orchestrate()),
    }
}

/// The emulator in its own process: prints its coordinates, serves until stdin closes.
async fn serve_emulator(referrals: usize) -> Result<()> {
    let emu = Emulator::start(EmulatorConfig {
        referrals,
        auto_approve_after: Some(1),
        ..EmulatorConfig::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    println!(
        "READY {} {} {} {}",
        emu.api_url(),
        emu.authority_url(),
        emu.client_id(),
        emu.tenant_id()
    );
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    while stdin.next_line().await?.is_some() {}
    emu.shutdown().await;
    Ok(())
}

/// The measured process: full run, wait for "go", incremental run, peak RSS.
async fn worker() -> Result<()> {
    let env: HashMap<String, String> = std::env::vars().collect();
    let config = Arc::new(
        config::load(&LoadOptions {
            env,
            ..LoadOptions::default()
        })
        .map_err(|e| e.to_string())?
        .config,
    );
    let url = config.require_database_url().map_err(|e| e.to_string())?;
    let pool = partner_center_sync::store::connect(url, &config.db_schema).await?;
    let http = partner_center_sync::outbound::http_client(&config)?;
    let tokens = TokenProvider::new(&config, http)?;
    let engine = SyncEngine::new(config, pool, tokens, Metrics::new())?;
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    for label in ["FULL", "INCR"] {
        if label == "INCR" {
            stdin.next_line().await?;
        }
        let clock = Instant::now();
        let request = RunRequest {
            trigger: Trigger::Cli,
            mode: RequestedMode::Auto,
            ..RunRequest::default()
        };
        let s = engine
            .run(request, tokio_util::sync::CancellationToken::new())
            .await?;
        println!(
            "{label} {} {} {} {} {}",
            clock.elapsed().as_secs_f64(),
            s.fetched,
            s.inserted,
            s.updated,
            s.write_secs
        );
    }
    println!("VMHWM {}", vm_hwm_kib().unwrap_or(0));
    Ok(())
}

fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

struct Child {
    child: tokio::process::Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Child {
    fn spawn(cmd: &mut Command) -> Result<Child> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        Ok(Child {
            child,
            stdin,
            stdout,
        })
    }

    async fn line(&mut self, prefix: &str) -> Result<Vec<String>> {
        while let Some(line) = self.stdout.next_line().await? {
            if let Some(rest) = line.strip_prefix(prefix) {
                return Ok(rest.split_whitespace().map(str::to_owned).collect());
            }
        }
        Err(format!("child ended before printing {prefix}").into())
    }
}

struct Figures {
    size: usize,
    full_secs: f64,
    full_fetched: u64,
    full_write_secs: f64,
    incr_secs: f64,
    incr_fetched: u64,
    incr_updated: u64,
    copy_default_secs: f64,
    copy_lz4_secs: f64,
    rss_kib: u64,
}

async fn orchestrate() -> Result<()> {
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let mut all = Vec::new();
    for size in sizes {
        eprintln!("bench: {size} referrals...");
        all.push(one_size(size).await?);
    }
    println!(
        "| referrals | full sync | of which in PostgreSQL | full rate | COPY, default table | full / COPY | COPY, lz4 table | full / COPY lz4 | incremental (1% changed) | incremental / full | worker peak RSS |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for f in &all {
        println!(
            "| {} | {:.2} s | {:.2} s | {:.0}/s | {:.2} s | {:.2}x | {:.2} s | {:.2}x | {:.3} s ({} read, {} updated) | {:.1}% | {:.1} MiB |",
            f.size,
            f.full_secs,
            f.full_write_secs,
            f.full_fetched as f64 / f.full_secs,
            f.copy_default_secs,
            f.full_secs / f.copy_default_secs,
            f.copy_lz4_secs,
            f.full_secs / f.copy_lz4_secs,
            f.incr_secs,
            f.incr_fetched,
            f.incr_updated,
            100.0 * f.incr_secs / f.full_secs,
            f.rss_kib as f64 / 1024.0,
        );
    }
    Ok(())
}

async fn one_size(size: usize) -> Result<Figures> {
    let exe = std::env::current_exe()?;
    let mut emu = Child::spawn(
        Command::new(&exe)
            .arg("--serve-emulator")
            .arg(size.to_string()),
    )?;
    let ready = emu.line("READY ").await?;
    let [api_url, authority_url, client_id, tenant_id] =
        <[String; 4]>::try_from(ready).map_err(|_| "bad READY line")?;

    let db = format!("pcs_bench_{}", uuid::Uuid::new_v4().simple());
    let copy_default_db = format!("{db}_copy_default");
    let copy_lz4_db = format!("{db}_copy_lz4");
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&format!("{SERVER}/postgres"))
        .await?;
    for name in [&db, &copy_default_db, &copy_lz4_db] {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await?;
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&format!("{SERVER}/{name}"))
            .await?;
        if *name == copy_default_db {
            // The migrations alone: the table as the server's defaults make it.
            partner_center_sync::store::MIGRATOR.run(&pool).await?;
        } else {
            partner_center_sync::store::migrate(&pool).await?;
        }
        pool.close().await;
    }

    let dir = tempfile::tempdir()?;
    let cache = dir.path().join("msal_token_cache.json");
    let mut config = Config {
        enabled: true,
        client_id: Some(client_id.clone()),
        tenant_id: Some(tenant_id.clone()),
        api_url: api_url.parse()?,
        authority_url: authority_url.parse()?,
        token_cache: cache.clone(),
        database_url: Some(SecretString::from(format!("{SERVER}/{db}"))),
        ..Config::default()
    };
    config.run_deadline = Duration::from_secs(3600);
    partner_center_sync::auth::login(&config, true).await?;

    let mut worker = Child::spawn(
        Command::new(&exe)
            .arg("--worker")
            .env("HUNTER_PARTNER_CENTER_ENABLED", "true")
            .env("HUNTER_PARTNER_CENTER_CLIENT_ID", &client_id)
            .env("HUNTER_PARTNER_CENTER_TENANT_ID", &tenant_id)
            .env("HUNTER_PARTNER_CENTER_API_URL", &api_url)
            .env("HUNTER_PARTNER_CENTER_AUTHORITY_URL", &authority_url)
            .env("HUNTER_PARTNER_CENTER_TOKEN_CACHE", &cache)
            .env("DATABASE_URL", format!("{SERVER}/{db}"))
            .env("RUST_LOG", "warn"),
    )?;
    let full = worker.line("FULL ").await?;
    let changed = size / 100;
    let control = format!(
        "{}/_emulator/mutate?op=update&count={changed}",
        api_url.trim_end_matches("/v1.0")
    );
    let answer = reqwest::Client::new().post(&control).send().await?;
    if !answer.status().is_success() {
        return Err(format!("the emulator refused {control}: {}", answer.status()).into());
    }
    worker.stdin.write_all(b"go\n").await?;
    let incr = worker.line("INCR ").await?;
    let rss = worker.line("VMHWM ").await?;
    worker.child.wait().await?;
    drop(emu);

    let rows = export_rows(&db).await?;
    let copy_default_secs = time_copy(&copy_default_db, &rows).await?;
    let copy_lz4_secs = time_copy(&copy_lz4_db, &rows).await?;
    for name in [&db, &copy_default_db, &copy_lz4_db] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&admin)
        .await?;
    }
    let num = |v: &[String], i: usize| v.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    Ok(Figures {
        size,
        full_secs: num(&full, 0),
        full_fetched: num(&full, 1) as u64,
        full_write_secs: num(&full, 4),
        incr_secs: num(&incr, 0),
        incr_fetched: num(&incr, 1) as u64,
        incr_updated: num(&incr, 3) as u64,
        copy_default_secs,
        copy_lz4_secs,
        rss_kib: num(&rss, 0) as u64,
    })
}

/// The synced rows in `COPY`'s text format, for the yardstick.
async fn export_rows(from_db: &str) -> Result<Vec<u8>> {
    use futures::TryStreamExt;
    let mut from = PgConnection::connect(&format!("{SERVER}/{from_db}")).await?;
    let mut data = Vec::new();
    let mut out = from
        .copy_out_raw("COPY partner_center_referrals TO STDOUT")
        .await?;
    while let Some(chunk) = out.try_next().await? {
        data.extend_from_slice(&chunk);
    }
    drop(out);
    from.close().await?;
    Ok(data)
}

/// The yardstick: `COPY … FROM STDIN` of the synced rows into the same, empty, fully
/// indexed table of a fresh database; only the `COPY` is timed.
async fn time_copy(to_db: &str, data: &[u8]) -> Result<f64> {
    let mut to = PgConnection::connect(&format!("{SERVER}/{to_db}")).await?;
    let clock = Instant::now();
    let mut copy = to
        .copy_in_raw("COPY partner_center_referrals FROM STDIN")
        .await?;
    for chunk in data.chunks(1 << 20) {
        copy.send(chunk).await?;
    }
    copy.finish().await?;
    let secs = clock.elapsed().as_secs_f64();
    to.close().await?;
    Ok(secs)
}
