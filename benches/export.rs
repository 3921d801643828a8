//! The daemon's memory while it streams a CSV export: `cargo bench --bench export` (not
//! part of `cargo test`; PostgreSQL on 127.0.0.1:5432).
//!
//! It fills a fresh database with 100,000 referrals (`BENCH_EXPORT_ROWS` to change),
//! starts the real daemon binary (`partner-center-sync run`, sync disabled) on a loopback
//! port, and downloads `GET /api/v1/partner-center/referrals.csv` for 1%, 10% and all of
//! them, reading as fast as it can. While each download streams, it samples the daemon's
//! `VmRSS` from /proc/PID/status every 10 ms; the figure is the peak seen. Memory that
//! held the rows would grow with the export; a streamed one stays flat.

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::StreamExt;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::watch;

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

/// The resident set of `pid` now, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Referrals shaped like Partner Center's: names and customers that need CSV quoting,
/// a team, a link and an expiry in the payload, a deal value equal to the row number (so
/// `max_value` selects a known share of them).
async fn fill(url: &str, rows: u64) -> Result<()> {
    let pool = PgPoolOptions::new().max_connections(1).connect(url).await?;
    partner_center_sync::store::migrate(&pool).await?;
    sqlx::query(
        "INSERT INTO partner_center_referrals (id, engagement_id, name, status, substatus, type, qualification, \
         direction, customer_name, customer_country, customer_domain, deal_value, currency, created_at, updated_at, \
         etag, payload) \
         SELECT md5(i::text)::uuid::text, md5('e' || i)::uuid::text, \
           'Contoso ' || i || ' - \"Copilot\" rollout, phase ' || (i % 7), \
           (ARRAY['New', 'Active', 'Closed'])[1 + i % 3], (ARRAY['Pending', 'Accepted', 'Won'])[1 + i % 3], \
           'Shared', 'SalesQualified', 'Incoming', 'Zoë''s Café ' || (i % 5000) || ' GmbH & Co. KG', \
           (ARRAY['DE', 'FR', 'US', 'JP'])[1 + i % 4], 'customer' || (i % 5000) || '.example', i, \
           (ARRAY['EUR', 'USD', 'GBP'])[1 + i % 3], now() - i * interval '1 minute', now() - i * interval '30 seconds', \
           '\"' || i || '\"', jsonb_build_object( \
             'id', md5(i::text)::uuid::text, 'expirationDateTime', to_char(now() + (i % 30) * interval '1 day', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
             'details', jsonb_build_object('dealValue', i, 'currency', 'EUR', 'notes', repeat('Wants a pilot first. ', 40)), \
             'team', jsonb_build_array(jsonb_build_object('firstName', 'Ana', 'lastName', 'Lopes', 'email', 'ana@partner.example'), \
                                       jsonb_build_object('firstName', 'Bo', 'lastName', 'Chen', 'email', 'bo@partner.example')), \
             'links', jsonb_build_object('self', jsonb_build_object('uri', 'https://api.partner.microsoft.com/v1.0/engagements/referrals/' || i))) \
         FROM generate_series(1, $1) AS i",
    )
    .bind(i64::try_from(rows)?)
    .execute(&pool)
    .await?;
    sqlx::query("ANALYZE partner_center_referrals")
        .execute(&pool)
        .await?;
    pool.close().await;
    Ok(())
}

struct Daemon {
    child: tokio::process::Child,
    base: String,
}

async fn start_daemon(url: &str) -> Result<Daemon> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_partner-center-sync"))
        .arg("run")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", url)
        .env("HUNTER_PARTNER_CENTER_ENABLED", "false")
        .env("HUNTER_PARTNER_CENTER_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return Ok(Daemon { child, base });
        }
        if Instant::now() > deadline {
            return Err("the daemon did not become ready within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Figure {
    query: String,
    rows: u64,
    bytes: u64,
    secs: f64,
    before_kib: u64,
    peak_kib: u64,
}

/// Downloads one export as fast as the client can read, sampling the daemon's RSS.
async fn export(daemon: &Daemon, pid: u32, query: &str) -> Result<Figure> {
    let before_kib = rss_kib(pid).ok_or("no VmRSS for the daemon")?;
    let (stop, mut stopped) = watch::channel(false);
    let sampler = tokio::spawn(async move {
        let mut peak = 0;
        loop {
            peak = peak.max(rss_kib(pid).unwrap_or(0));
            tokio::select! {
                _ = stopped.changed() => return peak,
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
        }
    });
    let clock = Instant::now();
    let response = reqwest::get(format!(
        "{}/api/v1/partner-center/referrals.csv?{query}",
        daemon.base
    ))
    .await?
    .error_for_status()?;
    let mut body = response.bytes_stream();
    let (mut bytes, mut lines) = (0u64, 0u64);
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    let secs = clock.elapsed().as_secs_f64();
    stop.send(true)?;
    let peak_kib = sampler.await?;
    Ok(Figure {
        query: query.to_owned(),
        // The header is one line; no generated field holds a newline.
        rows: lines.saturating_sub(1),
        bytes,
        secs,
        before_kib,
        peak_kib,
    })
}

async fn run() -> Result<()> {
    let rows: u64 = std::env::var("BENCH_EXPORT_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let db = format!("pcs_bench_export_{}", uuid::Uuid::new_v4().simple());
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&format!("{SERVER}/postgres"))
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&admin)
        .await?;
    let url = format!("{SERVER}/{db}");
    let outcome = async {
        eprintln!("bench: filling {rows} referrals...");
        fill(&url, rows).await?;
        let mut daemon = start_daemon(&url).await?;
        let pid = daemon.child.id().ok_or("the daemon has no pid")?;
        // One small export first, so the pool's connection and the allocator's first
        // arenas count as the resting state rather than as the export's cost.
        export(&daemon, pid, "max_value=10").await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut figures = Vec::new();
        for query in [
            format!("max_value={}", rows / 100),
            format!("max_value={}", rows / 10),
            String::new(),
        ] {
            eprintln!("bench: export ?{query}...");
            figures.push(export(&daemon, pid, &query).await?);
        }
        daemon.child.kill().await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(figures)
    }
    .await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
    )))
    .execute(&admin)
    .await?;
    let figures = outcome?;
    println!(
        "| export | rows | CSV size | time | rate | daemon RSS before | peak RSS during | growth |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for f in &figures {
        let mib = |kib: u64| kib as f64 / 1024.0;
        println!(
            "| `?{}` | {} | {:.1} MiB | {:.2} s | {:.0}/s | {:.1} MiB | {:.1} MiB | {:+.1} MiB |",
            f.query,
            f.rows,
            f.bytes as f64 / (1024.0 * 1024.0),
            f.secs,
            f.rows as f64 / f.secs,
            mib(f.before_kib),
            mib(f.peak_kib),
            mib(f.peak_kib) - mib(f.before_kib),
        );
    }
    Ok(())
}
