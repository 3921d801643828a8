//! The sync engine against real PostgreSQL (and, end to end, the real emulator).

use crate::support;

use support::TestDb;

use chrono::{DateTime, Utc};
use partner_center_sync::store::referrals::{self, ReferralRow};
use partner_center_sync::store::{companies, lock, runs};
use partner_center_sync::sync::extract;
use serde_json::value::RawValue;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use partner_center_sync::auth::TokenProvider;
use partner_center_sync::config::Config;
use partner_center_sync::metrics::Metrics;
use partner_center_sync::sync::{
    Mode, RequestedMode, RunRequest, RunStatus, RunSummary, SyncEngine, SyncError, Trigger,
};
use pc_emulator::{Emulator, EmulatorConfig, FaultSpec, PathKind};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

fn row(id: &str, status: &str, updated: &str, email: &str) -> ReferralRow {
    let json = format!(
        r#"{{"id":"{id}","status":"{status}","updatedDateTime":"{updated}","customerProfile":{{"name":"Cust {email}","team":[{{"email":"{email}"}}]}},"details":{{"dealValue":"12.50"}}}}"#
    );
    extract::extract(RawValue::from_string(json).expect("json"))
        .expect("usable")
        .row
}

async fn seen_at(pool: &PgPool) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT now()")
        .fetch_one(pool)
        .await
        .expect("now")
}

#[tokio::test]
async fn upsert_counts_inserted_updated_unchanged_and_keeps_companies() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let t0 = seen_at(pool).await;
    let mut tx = pool.begin().await.expect("tx");
    let rows = [
        row("a", "New", "2025-01-01T00:00:00Z", "x@contoso.com"),
        row("b", "New", "2025-01-01T00:00:00Z", "y@contoso.com"),
    ];
    let out = referrals::upsert(&mut tx, &rows, t0, None, true)
        .await
        .expect("upsert");
    assert_eq!((out.inserted, out.updated, out.unchanged), (2, 0, 0));
    companies::apply(&mut tx, &rows, &out.changes)
        .await
        .expect("companies");
    tx.commit().await.expect("commit");

    let mut tx = pool.begin().await.expect("tx");
    let rows = [
        row(
            "a",
            "Active",
            "2025-01-02T00:00:00.1234567Z",
            "x@fabrikam.com",
        ),
        row("b", "New", "2025-01-01T00:00:00Z", "y@contoso.com"),
    ];
    let out = referrals::upsert(&mut tx, &rows, t0, None, false)
        .await
        .expect("upsert");
    assert_eq!((out.inserted, out.updated, out.unchanged), (0, 1, 1));
    let old: Vec<_> = out
        .changes
        .iter()
        .map(|c| c.old_domain.as_deref())
        .collect();
    assert_eq!(
        old,
        [Some("contoso.com")],
        "only `a` changed, leaving contoso.com"
    );
    companies::apply(&mut tx, &rows, &out.changes)
        .await
        .expect("companies");
    tx.commit().await.expect("commit");

    let companies: Vec<(String, i32, Option<String>)> = sqlx::query_as(
        "SELECT domain, referral_count, latest_status FROM partner_center_companies ORDER BY domain",
    )
    .fetch_all(pool)
    .await
    .expect("companies");
    assert_eq!(
        companies,
        [
            ("contoso.com".into(), 1, Some("New".into())),
            ("fabrikam.com".into(), 1, Some("Active".into()))
        ]
    );
    let (updated, deal): (DateTime<Utc>, String) = sqlx::query_as(
        "SELECT updated_at, deal_value::text FROM partner_center_referrals WHERE id = 'a'",
    )
    .fetch_one(pool)
    .await
    .expect("row");
    assert_eq!(updated.to_rfc3339(), "2025-01-02T00:00:00.123456+00:00");
    assert_eq!(deal, "12.50");
}

#[tokio::test]
async fn full_pass_marks_unreturned_referrals_missing_and_clears_them_on_return() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let t0 = seen_at(pool).await;
    let mut tx = pool.begin().await.expect("tx");
    let both = [
        row("a", "New", "2025-01-01T00:00:00Z", "x@contoso.com"),
        row("b", "New", "2025-01-01T00:00:00Z", "y@contoso.com"),
    ];
    referrals::upsert(&mut tx, &both, t0, None, true)
        .await
        .expect("upsert");
    tx.commit().await.expect("commit");

    let t1 = seen_at(pool).await;
    let mut tx = pool.begin().await.expect("tx");
    let out = referrals::upsert(&mut tx, &both[..1], t1, None, true)
        .await
        .expect("upsert");
    assert_eq!(
        (out.inserted, out.updated, out.unchanged),
        (0, 0, 1),
        "a stamped, not counted as updated"
    );
    let marked = referrals::mark_missing(&mut tx, t1, None)
        .await
        .expect("mark");
    assert_eq!(marked.ids, ["b"]);
    tx.commit().await.expect("commit");

    let t2 = seen_at(pool).await;
    let mut tx = pool.begin().await.expect("tx");
    referrals::upsert(&mut tx, &both, t2, None, true)
        .await
        .expect("upsert");
    assert_eq!(
        referrals::mark_missing(&mut tx, t2, None)
            .await
            .expect("mark")
            .count,
        0
    );
    tx.commit().await.expect("commit");
    let missing: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM partner_center_referrals WHERE missing_since IS NOT NULL",
    )
    .fetch_one(pool)
    .await
    .expect("count");
    assert_eq!(missing, 0);
}

#[tokio::test]
async fn the_sync_lock_admits_one_holder_and_frees_on_release() {
    let db = TestDb::new().await;
    let first = lock::try_acquire(&db.pool)
        .await
        .expect("query")
        .expect("free");
    assert!(lock::try_acquire(&db.pool).await.expect("query").is_none());
    first.release().await.expect("release");
    let again = lock::try_acquire(&db.pool)
        .await
        .expect("query")
        .expect("free again");
    drop(again);
}

#[tokio::test]
async fn stale_running_rows_are_closed_but_queued_ones_are_kept() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let stale = runs::create_queued(
        pool,
        runs::Trigger::Schedule,
        runs::RequestedMode::Auto,
        false,
    )
    .await
    .expect("row");
    runs::start(pool, stale)
        .await
        .expect("start")
        .expect("was queued");
    let queued = runs::create_queued(
        pool,
        runs::Trigger::Manual,
        runs::RequestedMode::Full,
        false,
    )
    .await
    .expect("row");
    assert_eq!(
        runs::find_active(pool).await.expect("find").map(|r| r.id),
        Some(stale)
    );
    let closed = runs::close_stale(pool, Some(queued)).await.expect("close");
    assert_eq!(closed.iter().map(|r| r.id).collect::<Vec<_>>(), [stale]);
    let row = runs::get(pool, stale).await.expect("get").expect("exists");
    assert_eq!(row.status, "failed");
    assert!(
        row.error
            .as_deref()
            .unwrap_or_default()
            .contains("stopped before it finished")
    );
    assert_eq!(
        runs::find_active(pool).await.expect("find").map(|r| r.id),
        Some(queued)
    );
    assert_eq!(runs::list(pool, &[], 10).await.expect("list").len(), 2);
}

// ---------------------------------------------------------------------------------------
// End to end: the real emulator over loopback, a real login, real PostgreSQL.
// ---------------------------------------------------------------------------------------

/// id, status, substatus, updated_at, payload.
type StoredRow = (
    String,
    Option<String>,
    Option<String>,
    Option<DateTime<Utc>>,
    serde_json::Value,
);

struct Env {
    emu: Emulator,
    db: TestDb,
    config: Arc<Config>,
    _dir: tempfile::TempDir,
}

/// An emulator with `referrals` referrals, a database, and a config signed in through the
/// real device-code login (the emulator approves it by itself).
async fn env(referrals: usize, tweak: impl FnOnce(&mut EmulatorConfig, &mut Config)) -> Env {
    let mut emu_config = EmulatorConfig {
        referrals,
        auto_approve_after: Some(1),
        ..EmulatorConfig::default()
    };
    let mut config = Config::default();
    tweak(&mut emu_config, &mut config);
    let emu = Emulator::start(emu_config).await.expect("emulator starts");
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().expect("tempdir");
    config.enabled = true;
    config.client_id = Some(emu.client_id());
    config.tenant_id = Some(emu.tenant_id());
    config.api_url = emu.api_url().parse().expect("api url");
    config.authority_url = emu.authority_url().parse().expect("authority url");
    config.token_cache = dir.path().join("msal_token_cache.json");
    config.database_url = Some(SecretString::from(db.url.clone()));
    config.retry_max_delay = config.retry_max_delay.min(Duration::from_secs(2));
    config.http_timeout = config.http_timeout.min(Duration::from_secs(10));
    partner_center_sync::auth::login(&config, true)
        .await
        .expect("device-code login against the emulator");
    Env {
        emu,
        db,
        config: Arc::new(config),
        _dir: dir,
    }
}

impl Env {
    fn engine(&self) -> SyncEngine {
        self.engine_with(Metrics::new())
    }

    fn engine_with(&self, metrics: Metrics) -> SyncEngine {
        let http = partner_center_sync::outbound::http_client(&self.config).expect("http client");
        let tokens = TokenProvider::new(&self.config, http).expect("token provider");
        SyncEngine::new(self.config.clone(), self.db.pool.clone(), tokens, metrics).expect("engine")
    }

    async fn run(&self, mode: RequestedMode) -> Result<RunSummary, SyncError> {
        let request = RunRequest {
            trigger: Trigger::Cli,
            mode,
            ..RunRequest::default()
        };
        self.engine().run(request, CancellationToken::new()).await
    }

    /// The table (rows not marked missing) equals the emulator's truth: same ids, status,
    /// substatus, updated_at and payload; ids are the primary key, so no duplicates.
    async fn assert_matches_truth(&self) {
        let differences = self.differences().await;
        assert!(
            differences.is_empty(),
            "the table differs from the emulator's truth: {differences:?}"
        );
    }

    async fn differences(&self) -> Vec<String> {
        let truth = self.emu.truth();
        let rows: Vec<StoredRow> = sqlx::query_as(
            "SELECT id, status, substatus, updated_at, payload FROM partner_center_referrals WHERE missing_since IS NULL ORDER BY id",
        )
        .fetch_all(&self.db.pool)
        .await
        .expect("rows");
        let stored: BTreeMap<&str, _> = rows.iter().map(|r| (r.0.as_str(), r)).collect();
        let mut out: Vec<String> = sqlx::query_scalar(
            "WITH exact AS (SELECT customer_domain AS domain, count(*)::int AS n, max(updated_at) AS at
                            FROM partner_center_referrals WHERE missing_since IS NULL AND customer_domain IS NOT NULL
                            GROUP BY customer_domain)
             SELECT 'company ' || COALESCE(e.domain, c.domain) || ' out of step'
             FROM exact e FULL JOIN partner_center_companies c ON c.domain = e.domain
             WHERE (e.n, e.at) IS DISTINCT FROM (c.referral_count, c.latest_referral_at)",
        )
        .fetch_all(&self.db.pool)
        .await
        .expect("companies");
        if stored.len() != truth.len() {
            out.push(format!("{} rows, truth has {}", stored.len(), truth.len()));
        }
        for t in &truth {
            let id = t["id"].as_str().expect("truth id");
            let Some(r) = stored.get(id) else {
                out.push(format!("{id} absent"));
                continue;
            };
            let updated = t["updatedDateTime"]
                .as_str()
                .and_then(extract::parse_timestamp);
            if r.1.as_deref() != t["status"].as_str()
                || r.2.as_deref() != t["substatus"].as_str()
                || r.3 != updated
                || &r.4 != t
            {
                out.push(format!("{id} differs"));
            }
        }
        out
    }

    async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.db.pool)
            .await
            .expect("count")
    }

    async fn finish(self) {
        self.emu.shutdown().await;
    }
}

#[tokio::test]
async fn clean_full_sync_of_a_few_thousand_referrals() {
    let env = env(3000, |_, _| {}).await;
    let s = env
        .run(RequestedMode::Auto)
        .await
        .expect("first run succeeds");
    assert_eq!((s.mode, s.status), (Some(Mode::Full), RunStatus::Succeeded));
    assert_eq!((s.fetched, s.inserted, s.updated), (3000, 3000, 0));
    assert_eq!(s.pages, 30);
    env.assert_matches_truth().await;
    let companies = env
        .count("SELECT count(*) FROM partner_center_companies")
        .await;
    assert!(companies > 0, "companies derived from customer domains");
    let run: (String, String, i32, i32) =
        sqlx::query_as("SELECT status, mode, fetched, inserted FROM partner_center_sync_runs")
            .fetch_one(&env.db.pool)
            .await
            .expect("run row");
    assert_eq!(run, ("succeeded".into(), "full".into(), 3000, 3000));
    let watermark: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT watermark FROM partner_center_sync_state")
            .fetch_one(&env.db.pool)
            .await
            .expect("state");
    assert!(watermark.is_some());
    env.finish().await;
}

#[tokio::test]
async fn incremental_run_picks_up_updates_additions_and_closures() {
    let env = env(1000, |_, _| {}).await;
    env.run(RequestedMode::Auto).await.expect("full");
    let updated = env.emu.update_referrals(20);
    let added = env.emu.add_referrals(15);
    let closed = env.emu.close_referrals(10);
    let s = env.run(RequestedMode::Auto).await.expect("incremental");
    assert_eq!(s.mode, Some(Mode::Incremental));
    assert_eq!(s.inserted, added.len() as u64);
    assert!(
        s.updated >= 20 && s.updated <= (updated.len() + closed.len()) as u64,
        "{s}"
    );
    assert!(
        s.fetched < 200,
        "an incremental run reads only the recent changes: {s}"
    );
    env.assert_matches_truth().await;
    env.finish().await;
}

async fn survives(spec: &str, referrals: usize) -> RunSummary {
    let env = env(referrals, |e, _| {
        e.faults = FaultSpec::parse(spec).expect("fault spec")
    })
    .await;
    let s = env
        .run(RequestedMode::Auto)
        .await
        .unwrap_or_else(|e| panic!("run under `{spec}` failed: {e}"));
    env.assert_matches_truth().await;
    let faults: u64 = env.emu.stats().faults_injected.values().sum();
    assert!(faults > 0, "the fault `{spec}` never fired");
    env.finish().await;
    s
}

#[tokio::test]
async fn survives_a_429_storm_honouring_retry_after() {
    let started = std::time::Instant::now();
    let s = survives("429:every=2:retry_after=1", 500).await;
    assert!(s.retries >= 2, "{s}");
    assert!(
        started.elapsed() >= Duration::from_secs(u64::from(s.retries)),
        "waited at least Retry-After per retry"
    );
}

#[tokio::test]
async fn survives_5xx() {
    let s = survives("500:every=3,502:every=5,503:every=7,504:every=11", 800).await;
    assert!(s.retries >= 3, "{s}");
}

#[tokio::test]
async fn survives_connection_resets() {
    let s = survives("reset:every=3", 800).await;
    assert!(s.retries >= 2, "{s}");
}

#[tokio::test]
async fn survives_slow_pages() {
    let env = env(500, |e, c| {
        e.faults = FaultSpec::parse("slow:every=2:ms=1500").expect("spec");
        c.http_timeout = Duration::from_secs(1);
    })
    .await;
    let s = env
        .run(RequestedMode::Auto)
        .await
        .expect("slow pages are retried after the timeout");
    assert!(s.retries >= 1, "{s}");
    env.assert_matches_truth().await;
    env.finish().await;
}

#[tokio::test]
async fn survives_one_malformed_page() {
    let s = survives("malformed:page=3", 600).await;
    assert_eq!(s.retries, 1, "{s}");
}

#[tokio::test]
async fn survives_the_token_expiring_mid_run() {
    survives("token_expire:after=3", 1000).await;
}

#[tokio::test]
async fn referrals_updated_during_a_full_run_are_made_whole_by_the_next_run() {
    let env = env(1000, |e, _| {
        e.faults = FaultSpec::parse("mutate_during_paging:page=4:count=5").expect("spec")
    })
    .await;
    env.run(RequestedMode::Auto).await.expect("full");
    assert_eq!(
        env.differences().await.len(),
        5,
        "the full run read those 5 before they changed"
    );
    let s = env.run(RequestedMode::Auto).await.expect("incremental");
    assert_eq!(s.mode, Some(Mode::Incremental));
    env.assert_matches_truth().await;
    env.finish().await;
}

#[tokio::test]
async fn referrals_updated_during_an_incremental_run_are_made_whole_by_the_next_run() {
    let env = env(600, |_, c| c.page_size = 10).await;
    env.run(RequestedMode::Auto).await.expect("full");
    env.emu.update_referrals(60);
    env.emu
        .set_faults(FaultSpec::parse("mutate_during_paging:page=2:count=5").expect("spec"));
    let s = env.run(RequestedMode::Auto).await.expect("incremental");
    assert_eq!(s.mode, Some(Mode::Incremental));
    assert!(s.pages > 2, "{s}");
    assert_eq!(
        env.differences().await.len(),
        5,
        "the incremental run read those 5 before they changed"
    );
    env.emu.set_faults(FaultSpec::default());
    env.run(RequestedMode::Auto)
        .await
        .expect("incremental again");
    env.assert_matches_truth().await;
    env.finish().await;
}

#[tokio::test]
async fn two_syncs_started_at_once_run_one_at_a_time() {
    let env = env(300, |e, _| {
        e.faults = FaultSpec::parse("slow:every=1:ms=300").expect("spec")
    })
    .await;
    let (a, b) = tokio::join!(env.run(RequestedMode::Auto), env.run(RequestedMode::Auto));
    let (ok, refused): (Vec<_>, Vec<_>) = [a, b].into_iter().partition(Result::is_ok);
    assert_eq!(ok.len(), 1);
    let err = refused
        .into_iter()
        .next()
        .expect("one refused")
        .expect_err("refused");
    assert!(matches!(err, SyncError::AnotherSyncRunning), "{err}");
    assert_eq!(err.exit_code(), 75);
    assert!(err.to_string().contains("nother sync is running"));
    env.assert_matches_truth().await;
    assert_eq!(
        env.count("SELECT count(*) FROM partner_center_sync_runs")
            .await,
        1,
        "the refused run leaves no row"
    );
    env.finish().await;
}

#[tokio::test]
async fn referrals_disappearing_are_marked_missing_and_cleared_when_they_return() {
    let env = env(400, |_, _| {}).await;
    env.run(RequestedMode::Auto).await.expect("full");
    let hidden = env.emu.hide_referrals(7);
    let s = env.run(RequestedMode::Full).await.expect("full");
    assert_eq!(s.marked_missing, 7, "{s}");
    env.assert_matches_truth().await;
    let missing: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM partner_center_referrals WHERE missing_since IS NOT NULL ORDER BY id",
    )
    .fetch_all(&env.db.pool)
    .await
    .expect("missing");
    let mut hidden_sorted = hidden.clone();
    hidden_sorted.sort();
    assert_eq!(missing, hidden_sorted, "marked, never deleted");
    env.emu.unhide_all();
    let s = env.run(RequestedMode::Full).await.expect("full");
    assert_eq!(s.marked_missing, 0);
    assert_eq!(
        env.count("SELECT count(*) FROM partner_center_referrals WHERE missing_since IS NOT NULL")
            .await,
        0
    );
    env.assert_matches_truth().await;
    env.finish().await;
}

#[tokio::test]
async fn the_quirky_next_link_form_is_repaired() {
    let env = env(450, |e, _| e.quirky_next_link = true).await;
    let s = env.run(RequestedMode::Auto).await.expect("full");
    assert_eq!(s.next_links_repaired, 4, "{s}");
    env.assert_matches_truth().await;
    env.finish().await;
}

#[tokio::test]
async fn a_refused_incremental_filter_falls_back_to_full_passes_and_is_remembered() {
    let env = env(300, |e, _| e.refuse_updated_filter = true).await;
    let first = env.run(RequestedMode::Auto).await.expect("first run");
    assert_eq!(first.mode, Some(Mode::Full), "a first run is a full pass");
    env.emu.update_referrals(7);
    env.emu.add_referrals(3);

    let second = env.run(RequestedMode::Auto).await.expect("falls back");
    assert_eq!(second.mode, Some(Mode::Full), "{second}");
    assert_eq!((second.inserted, second.updated), (3, 7), "{second}");
    let bad_requests = || env.emu.stats().requests_with(PathKind::ReferralList, 400);
    assert_eq!(bad_requests(), 1, "the filter was tried once");
    let (mode, supported): (String, bool) = sqlx::query_as(
        "SELECT r.mode, s.incremental_filter_supported FROM partner_center_sync_runs r, partner_center_sync_state s ORDER BY r.id DESC LIMIT 1",
    )
    .fetch_one(&env.db.pool)
    .await
    .expect("run and state");
    assert_eq!(
        (mode.as_str(), supported),
        ("full", false),
        "the run records the pass it made; the state remembers the refusal"
    );
    env.assert_matches_truth().await;

    env.emu.update_referrals(2);
    let third = env.run(RequestedMode::Auto).await.expect("third run");
    assert_eq!(third.mode, Some(Mode::Full));
    assert_eq!(bad_requests(), 1, "not tried again");
    env.assert_matches_truth().await;
    env.finish().await;
}

#[tokio::test]
async fn a_revoked_login_fails_with_sign_in_required_and_changes_nothing() {
    let env = env(300, |_, _| {}).await;
    env.run(RequestedMode::Auto).await.expect("full");
    env.emu.update_referrals(10);
    let before: Vec<(String, serde_json::Value)> =
        sqlx::query_as("SELECT id, payload FROM partner_center_referrals ORDER BY id")
            .fetch_all(&env.db.pool)
            .await
            .expect("rows");
    env.emu.revoke_refresh_tokens();
    env.emu.expire_access_tokens();
    let err = env.run(RequestedMode::Auto).await.expect_err("must fail");
    assert!(matches!(err, SyncError::SignInRequired { .. }), "{err}");
    assert_eq!(err.exit_code(), 77);
    let after: Vec<(String, serde_json::Value)> =
        sqlx::query_as("SELECT id, payload FROM partner_center_referrals ORDER BY id")
            .fetch_all(&env.db.pool)
            .await
            .expect("rows");
    assert!(before == after, "no row changed");
    let last: (String, Option<String>) = sqlx::query_as(
        "SELECT status, error FROM partner_center_sync_runs ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&env.db.pool)
    .await
    .expect("run");
    assert_eq!(last.0, "failed");
    assert!(last.1.unwrap_or_default().contains("Sign-in required"));
    env.finish().await;
}

#[tokio::test]
async fn dry_run_writes_nothing_and_reports_what_it_would_do() {
    let env = env(250, |_, _| {}).await;
    let dry = RunRequest {
        trigger: Trigger::Cli,
        dry_run: true,
        ..RunRequest::default()
    };
    let s = env
        .engine()
        .run(dry, CancellationToken::new())
        .await
        .expect("dry run");
    assert_eq!((s.inserted, s.dry_run, s.run_id), (250, true, None));
    assert_eq!(s.sample_inserted.len(), 5);
    for table in [
        "partner_center_referrals",
        "partner_center_sync_runs",
        "partner_center_sync_state",
        "partner_center_companies",
        "partner_center_sync_errors",
    ] {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&env.db.pool)
                .await
                .expect("count");
        assert_eq!(n, 0, "{table} was written by a dry run");
    }
    env.run(RequestedMode::Auto).await.expect("full");
    let changed = env.emu.update_referrals(4);
    env.emu.hide_referrals(3);
    let dry = RunRequest {
        trigger: Trigger::Cli,
        dry_run: true,
        mode: RequestedMode::Full,
        ..RunRequest::default()
    };
    let before = env
        .count("SELECT count(*) FROM partner_center_sync_runs")
        .await;
    let s = env
        .engine()
        .run(dry, CancellationToken::new())
        .await
        .expect("dry run");
    assert_eq!((s.updated, s.marked_missing, s.inserted), (4, 3, 0), "{s}");
    assert!(s.sample_updated.iter().all(|id| changed.contains(id)));
    assert!(s.to_string().contains("Nothing was written"));
    assert_eq!(
        env.count("SELECT count(*) FROM partner_center_sync_runs")
            .await,
        before
    );
    assert_eq!(
        env.count("SELECT count(*) FROM partner_center_referrals WHERE missing_since IS NOT NULL")
            .await,
        0
    );
    env.finish().await;
}

/// The real binary's `sync`, configured through the environment as under systemd.
fn cli(env: &Env) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_partner-center-sync"));
    let c = &env.config;
    cmd.arg("sync")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HUNTER_PARTNER_CENTER_ENABLED", "true")
        .env(
            "HUNTER_PARTNER_CENTER_CLIENT_ID",
            c.client_id.clone().unwrap_or_default(),
        )
        .env(
            "HUNTER_PARTNER_CENTER_TENANT_ID",
            c.tenant_id.clone().unwrap_or_default(),
        )
        .env("HUNTER_PARTNER_CENTER_API_URL", c.api_url.as_str())
        .env(
            "HUNTER_PARTNER_CENTER_AUTHORITY_URL",
            c.authority_url.as_str(),
        )
        .env("HUNTER_PARTNER_CENTER_TOKEN_CACHE", &c.token_cache)
        .env("HUNTER_PARTNER_CENTER_RETRY_MAX_DELAY", "1")
        .env("DATABASE_URL", &env.db.url)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn a_sync_killed_mid_run_keeps_its_pages_and_the_next_run_completes() {
    let env = env(2000, |e, _| {
        e.faults = FaultSpec::parse("slow:every=1:ms=150").expect("spec")
    })
    .await;
    let mut child = cli(&env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut committed = 0;
    for _ in 0..200 {
        committed = env
            .count("SELECT count(*) FROM partner_center_referrals")
            .await;
        if committed >= 300 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().await.expect("SIGKILL");
    assert!(
        (300..2000).contains(&committed),
        "killed mid-run after {committed} referrals"
    );
    let stale: (i64, String) = sqlx::query_as("SELECT id, status FROM partner_center_sync_runs")
        .fetch_one(&env.db.pool)
        .await
        .expect("row");
    assert_eq!(stale.1, "running", "the killed run could not close its row");
    let watermark: Option<Option<DateTime<Utc>>> =
        sqlx::query_scalar("SELECT watermark FROM partner_center_sync_state")
            .fetch_optional(&env.db.pool)
            .await
            .expect("state");
    assert_eq!(
        watermark.flatten(),
        None,
        "no watermark before the last page"
    );
    let rows_per_run: i32 = sqlx::query_scalar("SELECT inserted FROM partner_center_sync_runs")
        .fetch_one(&env.db.pool)
        .await
        .expect("counters");
    assert_eq!(
        i64::from(rows_per_run),
        env.count("SELECT count(*) FROM partner_center_referrals")
            .await,
        "counters commit with the rows"
    );

    env.emu.set_faults(FaultSpec::default());
    let out = cli(&env).arg("--json").output().await.expect("second run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("--json prints the summary");
    assert_eq!(summary["status"], "succeeded");
    assert_eq!(summary["mode"], "full");
    let closed: (String, Option<String>) =
        sqlx::query_as("SELECT status, error FROM partner_center_sync_runs WHERE id = $1")
            .bind(stale.0)
            .fetch_one(&env.db.pool)
            .await
            .expect("row");
    assert_eq!(closed.0, "failed");
    assert!(
        closed
            .1
            .unwrap_or_default()
            .contains("stopped before it finished")
    );
    env.assert_matches_truth().await;
    env.finish().await;
}

#[tokio::test]
async fn cli_exit_codes_another_sync_and_feature_flag_off() {
    let env = env(50, |_, _| {}).await;
    let held = lock::try_acquire(&env.db.pool)
        .await
        .expect("query")
        .expect("lock free");
    let out = cli(&env).output().await.expect("run");
    assert_eq!(out.status.code(), Some(75));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nother sync is running"));
    held.release().await.expect("release");

    let out = cli(&env)
        .env("HUNTER_PARTNER_CENTER_ENABLED", "false")
        .env("RUST_LOG", "info")
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("disabled"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("feature_flag_disabled"));
    assert_eq!(
        env.count("SELECT count(*) FROM partner_center_sync_runs")
            .await,
        0,
        "touches nothing"
    );

    let out = cli(&env).output().await.expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("succeeded"));
    env.assert_matches_truth().await;
    env.finish().await;
}

#[tokio::test]
async fn cancelling_stops_between_pages_and_marks_the_run_cancelled() {
    let env = env(2000, |e, _| {
        e.faults = FaultSpec::parse("slow:every=1:ms=100").expect("spec")
    })
    .await;
    let (tx, mut rx) = tokio::sync::watch::channel(partner_center_sync::sync::Progress::default());
    let cancel = CancellationToken::new();
    let request = RunRequest {
        trigger: Trigger::Schedule,
        progress: Some(tx),
        ..RunRequest::default()
    };
    let engine = env.engine();
    let run = tokio::spawn({
        let cancel = cancel.clone();
        async move { engine.run(request, cancel).await }
    });
    for _ in 0..200 {
        if rx.borrow_and_update().fetched >= 300 {
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), rx.changed()).await;
    }
    cancel.cancel();
    let err = run.await.expect("join").expect_err("cancelled");
    assert!(matches!(err, SyncError::Cancelled), "{err}");
    let (status, inserted): (String, i32) =
        sqlx::query_as("SELECT status, inserted FROM partner_center_sync_runs")
            .fetch_one(&env.db.pool)
            .await
            .expect("row");
    assert_eq!(status, "cancelled");
    let rows = env
        .count("SELECT count(*) FROM partner_center_referrals")
        .await;
    assert!((300..2000).contains(&rows), "{rows}");
    assert_eq!(
        i64::from(inserted),
        rows,
        "rows and counters commit together"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM partner_center_sync_state WHERE watermark IS NOT NULL")
            .await,
        0,
        "no watermark"
    );
    env.emu.set_faults(FaultSpec::default());
    env.run(RequestedMode::Auto)
        .await
        .expect("the next run completes");
    env.assert_matches_truth().await;
    env.finish().await;
}

#[tokio::test]
async fn a_run_past_its_deadline_fails_cleanly() {
    let env = env(1000, |e, c| {
        e.faults = FaultSpec::parse("slow:every=1:ms=200").expect("spec");
        c.run_deadline = Duration::from_secs(1);
    })
    .await;
    let err = env.run(RequestedMode::Auto).await.expect_err("deadline");
    assert!(matches!(err, SyncError::DeadlineExceeded { .. }), "{err}");
    let (status, error): (String, Option<String>) =
        sqlx::query_as("SELECT status, error FROM partner_center_sync_runs")
            .fetch_one(&env.db.pool)
            .await
            .expect("row");
    assert_eq!(status, "failed");
    assert!(error.unwrap_or_default().contains("run_deadline"));
    assert_eq!(
        env.count("SELECT count(*) FROM partner_center_sync_state WHERE watermark IS NOT NULL")
            .await,
        0
    );
    env.finish().await;
}

#[tokio::test]
async fn since_reads_only_recent_changes_without_moving_the_watermark_past_a_gap() {
    let env = env(500, |_, _| {}).await;
    env.run(RequestedMode::Auto).await.expect("full");
    let watermark = || async {
        sqlx::query_scalar::<_, Option<DateTime<Utc>>>(
            "SELECT watermark FROM partner_center_sync_state",
        )
        .fetch_one(&env.db.pool)
        .await
        .expect("state")
    };
    let before = watermark().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Timestamps may print with no fractional digits: a second of slack.
    let since = Utc::now() - chrono::Duration::seconds(1);
    let changed = env.emu.update_referrals(6);
    let metrics = Metrics::new();
    let request = RunRequest {
        trigger: Trigger::Cli,
        since: Some(since),
        ..RunRequest::default()
    };
    let s = env
        .engine_with(metrics.clone())
        .run(request, CancellationToken::new())
        .await
        .expect("--since run");
    assert_eq!(s.mode, Some(Mode::Incremental));
    assert_eq!(
        (s.fetched, s.updated),
        (changed.len() as u64, changed.len() as u64),
        "{s}"
    );
    assert_eq!(
        watermark().await,
        before,
        "a --since later than the window leaves the watermark"
    );
    env.assert_matches_truth().await;
    let exposition = metrics.encode();
    for line in [
        "partner_center_sync_referrals_fetched_total 6",
        "partner_center_sync_referrals_upserted_total{outcome=\"updated\"} 6",
        "partner_center_sync_runs_total{trigger=\"cli\",status=\"succeeded\"} 1",
        "partner_center_sync_partner_center_requests_total{status=\"200\"} 1",
    ] {
        assert!(
            exposition.contains(line),
            "{line} missing from\n{exposition}"
        );
    }
    env.finish().await;
}

// ---------------------------------------------------------------------------------------
// Hostile input: one bad referral never stops syncing.
// ---------------------------------------------------------------------------------------

/// A value as the table must hold it: every NUL, in values and keys, replaced.
fn without_nul(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::from(s.replace('\0', "\u{FFFD}")),
        Value::Array(a) => Value::Array(a.iter().map(without_nul).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.replace('\0', "\u{FFFD}"), without_nul(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The run's `partner_center_sync_errors` rows: referral id, field, reason.
async fn sync_errors(pool: &PgPool, run_id: i64) -> Vec<(Option<String>, Option<String>, String)> {
    sqlx::query_as(
        "SELECT referral_id, field, reason FROM partner_center_sync_errors WHERE run_id = $1 ORDER BY id",
    )
    .bind(run_id)
    .fetch_all(pool)
    .await
    .expect("partner_center_sync_errors")
}

#[tokio::test]
async fn a_page_of_poison_referrals_stores_every_good_one_records_each_bad_one_twice() {
    let env = env(300, |e, _| e.poison_referrals = true).await;
    let truth = env.emu.truth();
    let long_id = truth
        .iter()
        .filter_map(|t| t["id"].as_str())
        .find(|id| id.len() > 2700)
        .expect("the emulator serves an over-long id")
        .to_owned();
    let nul_id = truth
        .iter()
        .filter_map(|t| t["id"].as_str())
        .find(|id| id.contains('\0'))
        .expect("the emulator serves a NUL in an id")
        .replace('\0', "\u{FFFD}");
    let with_nul = truth
        .iter()
        .filter(|t| t.to_string().contains("\\u0000"))
        .count();
    assert_eq!(
        with_nul, 3,
        "NUL in a name, in a nested field and key, in an id"
    );

    // First run: the real binary, so the summary, the exit code and the log are the user's.
    let out = cli(&env)
        .arg("--json")
        .env("RUST_LOG", "info")
        .output()
        .await
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let first: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json");
    assert_eq!(
        (
            &first["status"],
            &first["fetched"],
            &first["inserted"],
            &first["parse_errors"]
        ),
        (&"succeeded".into(), &300.into(), &299.into(), &5.into()),
        "{first}"
    );
    let run_id = first["run_id"].as_i64().expect("run id");
    let finished: serde_json::Value = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "sync_finished")
        .expect("a sync_finished event");
    assert_eq!(
        (
            &finished["parse_errors"],
            &finished["run_id"],
            &finished["trigger"],
            &finished["mode"]
        ),
        (&5.into(), &run_id.into(), &"cli".into(), &"full".into()),
        "the event counts the errors and names its run: {finished}"
    );
    let started = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "sync_started")
        .expect("a sync_started event");
    assert_eq!(started["run_id"], run_id, "{started}");

    let check = |errors: Vec<(Option<String>, Option<String>, String)>| {
        assert_eq!(errors.len(), 5, "{errors:?}");
        let field_of = |id: &str| {
            errors
                .iter()
                .find(|(r, _, _)| r.as_deref() == Some(id))
                .map(|(_, f, reason)| (f.clone().unwrap_or_default(), reason.clone()))
                .unwrap_or_else(|| panic!("no error for {id}: {errors:?}"))
        };
        let shown: String = long_id.chars().take(80).chain(['…']).collect();
        let (field, reason) = field_of(&shown);
        assert_eq!(field, "id");
        assert!(reason.contains("skipped"), "{reason}");
        let (field, reason) = field_of(&nul_id);
        assert_eq!(field, "id");
        assert!(reason.contains("U+FFFD"), "{reason}");
        let fields: Vec<&str> = errors.iter().filter_map(|(_, f, _)| f.as_deref()).collect();
        assert!(
            fields.contains(&"name") && fields.contains(&"status"),
            "{fields:?}"
        );
        assert!(
            fields
                .iter()
                .any(|f| f.contains("details.notes") && f.contains("details (a key)")),
            "{fields:?}"
        );
    };
    check(sync_errors(&env.db.pool, run_id).await);

    let rows: Vec<(String, Option<String>, Option<String>, serde_json::Value)> = sqlx::query_as(
        "SELECT id, status, customer_name, payload FROM partner_center_referrals ORDER BY id",
    )
    .fetch_all(&env.db.pool)
    .await
    .expect("rows");
    assert_eq!(
        rows.len(),
        299,
        "every referral but the one with an over-long id"
    );
    let stored: BTreeMap<&str, _> = rows.iter().map(|r| (r.0.as_str(), r)).collect();
    for t in truth.iter().filter(|t| t["id"] != long_id.as_str()) {
        let want = without_nul(t);
        let id = want["id"].as_str().expect("id");
        let row = stored.get(id).unwrap_or_else(|| panic!("{id} missing"));
        assert_eq!(row.3, want, "{id}: the payload as sent, NUL replaced");
        let status = t["status"].as_str().unwrap_or_default();
        if status.len() > 1000 {
            assert_eq!(
                row.1, None,
                "a 10 KB status is left out of its indexed column"
            );
        } else {
            assert_eq!(row.1.as_deref(), Some(status));
        }
        if let Some(name) = t["customerProfile"]["name"].as_str() {
            assert_eq!(
                row.2.as_deref(),
                Some(name.replace('\0', "\u{FFFD}").as_str())
            );
        }
    }
    assert!(
        rows.iter()
            .any(|r| r.2.as_ref().is_some_and(|n| n.len() > 10_000)),
        "a long value in a column without an index is kept whole"
    );

    // Second run over the same page: the same errors, nothing rewritten, still a success.
    let second = env
        .run(RequestedMode::Full)
        .await
        .expect("the next run succeeds too");
    assert_eq!(second.status, RunStatus::Succeeded);
    assert_eq!(
        (
            second.parse_errors,
            second.inserted,
            second.updated,
            second.unchanged
        ),
        (5, 0, 0, 299),
        "{second}"
    );
    let second_id = second.run_id.expect("run id");
    check(sync_errors(&env.db.pool, second_id).await);
    let counted: Vec<(String, i32)> =
        sqlx::query_as("SELECT status, parse_errors FROM partner_center_sync_runs ORDER BY id")
            .fetch_all(&env.db.pool)
            .await
            .expect("runs");
    assert_eq!(counted, [("succeeded".into(), 5), ("succeeded".into(), 5)]);

    // The API and `status` show the count.
    let mut config = (*env.config).clone();
    config.enabled = false;
    let daemon = support::spawn_daemon(config, &env.db).await;
    let http = reqwest::Client::new();
    let run: serde_json::Value = http
        .get(format!(
            "{}/api/v1/partner-center/sync-runs/{second_id}",
            daemon.base
        ))
        .send()
        .await
        .expect("GET run")
        .json()
        .await
        .expect("JSON");
    assert_eq!(run["parse_errors"], 5, "{run}");
    let listed = run["sync_errors"].as_array().expect("sync_errors");
    assert_eq!(listed.len(), 5);
    assert!(listed.iter().any(|e| e["field"] == "status"), "{run}");
    let status = support::command()
        .arg("status")
        .env("DATABASE_URL", &env.db.url)
        .env(
            "HUNTER_PARTNER_CENTER_LISTEN",
            format!("127.0.0.1:{}", support::free_port()),
        )
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains(&format!("#{second_id} ")) && l.contains(" errors 5")),
        "{text}"
    );
    env.finish().await;
}

mod properties {
    //! Untrusted referral text through extraction and both write paths (`COPY` for new rows,
    //! the `UPDATE` of changed ones) into a real PostgreSQL, read back unchanged.

    use proptest::prelude::*;
    use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
    use serde_json::{Value, json};

    use super::*;

    /// What the COPY text format treats specially, NUL, and anything else.
    fn wild() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => any::<String>(),
            4 => "[\\\\\t\n\r\"Nab.\u{0}é🚀 ]{0,16}",
            1 => Just("\\N".to_owned()),
            1 => Just("\\.".to_owned()),
            1 => (990usize..1010).prop_map(|n| "k".repeat(n)),
        ]
    }

    fn stamp() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("2025-01-14T17:45:09.4405187Z".to_owned()),
            Just("2024-02-29T23:59:59+01:00".to_owned()),
            Just("0001-01-01T00:00:00Z".to_owned()),
            wild(),
        ]
    }

    fn referral(i: usize) -> impl Strategy<Value = Value> {
        let deal = prop_oneof![
            Just(json!("12.50")),
            Just(json!("1e3")),
            Just(json!(".5")),
            Just(json!(-0.001)),
            Just(json!("1e999")),
            wild().prop_map(Value::from),
        ];
        (
            wild(),
            prop::collection::vec(wild(), 10),
            (stamp(), stamp()),
            deal,
            (wild(), wild()),
        )
            .prop_map(move |(id, t, (created, updated), deal, (key, value))| {
                json!({
                    "id": format!("{id}#{i}"),
                    "engagementId": t[0], "name": t[1], "status": t[2], "substatus": t[3],
                    "type": t[4], "direction": t[5], "qualification": t[6], "eTag": t[7],
                    "createdDateTime": created, "updatedDateTime": updated,
                    "customerProfile": {
                        "name": t[8], "address": { "country": t[9] },
                        "team": [{ "email": format!("{}@{}.example", t[0], t[1]) }]
                    },
                    "details": { "dealValue": deal, "currency": t[9], key: [value] }
                })
            })
    }

    /// Each referral twice, as first sent and as later changed (same id).
    fn batch() -> impl Strategy<Value = Vec<(Value, Value)>> {
        (1usize..6).prop_flat_map(|n| {
            (0..n)
                .map(|i| {
                    (referral(i), referral(i)).prop_map(|(first, mut later)| {
                        later["id"] = first["id"].clone();
                        (first, later)
                    })
                })
                .collect::<Vec<_>>()
        })
    }

    fn rows(referrals: impl Iterator<Item = Value>) -> Vec<ReferralRow> {
        referrals
            .filter_map(|v| {
                let raw = RawValue::from_string(v.to_string()).expect("json");
                extract::extract(raw).ok().map(|e| e.row)
            })
            .collect()
    }

    /// Id, the text columns in table order, the deal value as numeric text, the timestamps.
    type Stored = (
        String,
        Vec<Option<String>>,
        Option<String>,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
    );

    async fn read_back(pool: &PgPool, id: &str) -> Stored {
        sqlx::query_as(
            "SELECT id, ARRAY[engagement_id, name, status, substatus, type, qualification, direction,
                    customer_name, customer_country, customer_domain, currency, etag],
                    deal_value::text, created_at, updated_at
             FROM partner_center_referrals WHERE id = $1",
        )
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("the row is there")
    }

    async fn expected(pool: &PgPool, r: &ReferralRow) -> Stored {
        let deal: Option<String> = sqlx::query_scalar("SELECT $1::numeric::text")
            .bind(r.deal_value.as_deref())
            .fetch_one(pool)
            .await
            .expect("numeric");
        (
            r.id.clone(),
            vec![
                r.engagement_id.clone(),
                r.name.clone(),
                r.status.clone(),
                r.substatus.clone(),
                r.kind.clone(),
                r.qualification.clone(),
                r.direction.clone(),
                r.customer_name.clone(),
                r.customer_country.clone(),
                r.customer_domain.clone(),
                r.currency.clone(),
                r.etag.clone(),
            ],
            deal,
            r.created_at,
            r.updated_at,
        )
    }

    /// Writes `rows` in one transaction and checks every column and the payload.
    async fn write_and_check(pool: &PgPool, rows: &[ReferralRow]) -> Result<(), TestCaseError> {
        let now = seen_at(pool).await;
        let mut tx = pool.begin().await.expect("tx");
        let written = referrals::upsert(&mut tx, rows, now, None, true).await;
        prop_assert!(written.is_ok(), "the write failed: {written:?}");
        let written = written.expect("checked");
        prop_assert!(
            companies::apply(&mut tx, rows, &written.changes)
                .await
                .is_ok()
        );
        tx.commit().await.expect("commit");
        for r in rows {
            prop_assert_eq!(read_back(pool, &r.id).await, expected(pool, r).await);
            let same: bool = sqlx::query_scalar(
                "SELECT payload = $2::jsonb FROM partner_center_referrals WHERE id = $1",
            )
            .bind(&r.id)
            .bind(r.payload.get())
            .fetch_one(pool)
            .await
            .expect("payload");
            prop_assert!(same, "payload of {:?} changed on the way", r.id);
        }
        Ok(())
    }

    #[test]
    fn referral_text_round_trips_through_copy_and_update() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let db = rt.block_on(TestDb::new());
        let pool = &db.pool;
        let mut runner = TestRunner::new(RunnerConfig {
            cases: 48,
            failure_persistence: None,
            ..RunnerConfig::default()
        });
        let outcome = runner.run(&batch(), |pairs| {
            rt.block_on(async {
                sqlx::query("TRUNCATE partner_center_referrals, partner_center_companies")
                    .execute(pool)
                    .await
                    .expect("truncate");
                let first = rows(pairs.iter().map(|(a, _)| a.clone()));
                write_and_check(pool, &first).await?;
                write_and_check(pool, &rows(pairs.iter().map(|(_, b)| b.clone()))).await
            })
        });
        if let Err(e) = outcome {
            panic!("{e}");
        }
    }
}

/// `--full` reads everything, so a `--since` with it would be silently ignored: it is a
/// usage error instead (exit 2), and nothing runs.
#[tokio::test]
async fn full_with_since_is_a_usage_error_and_pretty_logs_have_no_colour_off_a_terminal() {
    let env = env(5, |_, _| {}).await;
    let out = cli(&env)
        .args(["--full", "--since", "2026-01-31"])
        .output()
        .await
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the argument '--full' cannot be used with '--since <TIMESTAMP>'"),
        "{stderr}"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM partner_center_sync_runs")
            .await,
        0
    );

    let out = cli(&env)
        .env("HUNTER_PARTNER_CENTER_LOG_FORMAT", "pretty")
        .env("RUST_LOG", "info")
        .output()
        .await
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("Sync finished: 5 fetched, 5 new, 0 updated, 0 errors in "),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "no ANSI escapes when stderr is not a terminal: {stderr:?}"
    );
    env.finish().await;
}

/// On a terminal (`script` gives the binary a pty) `sync` draws its progress as a status
/// line and the pretty log lines, in colour, go above it: each time the progress text is
/// written, what follows is the sequence that clears it, never a log line run into it.
#[tokio::test]
async fn on_a_terminal_log_lines_never_run_into_the_progress_line() {
    let env = env(250, |_, _| {}).await;
    let cmd = cli(&env);
    let mut script = tokio::process::Command::new("script");
    script.env_clear();
    for (k, v) in cmd.as_std().get_envs() {
        if let Some(v) = v {
            script.env(k, v);
        }
    }
    let out = script
        .args(["--quiet", "--return", "--flush", "--command"])
        .arg(format!(
            "{} sync 2>&1",
            env!("CARGO_BIN_EXE_partner-center-sync")
        ))
        .arg("/dev/null")
        .env("HUNTER_PARTNER_CENTER_PAGE_SIZE", "25")
        .env("RUST_LOG", "info,partner_center_sync::sync=debug")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("script (util-linux) runs");
    let tty = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{tty}");
    const CLEAR: &str = "\r\u{1b}[2K";
    let progress: Vec<_> = tty.match_indices(" referrals, ").collect();
    assert!(progress.len() >= 5, "a progress update per batch: {tty:?}");
    for (at, _) in progress {
        let rest = &tty[at..];
        let end = rest.find("/s").expect("the rate ends the line") + 2;
        let after = &rest[end..];
        assert!(
            after.is_empty() || after.starts_with(CLEAR),
            "something was written into the progress line: {:?}",
            &rest[..rest.len().min(200)]
        );
    }
    assert!(
        tty.contains("Committed ") && tty.contains("Sync finished: 250 fetched"),
        "{tty:?}"
    );
    assert!(
        tty.contains("\u{1b}[3"),
        "log levels are coloured on a terminal: {tty:?}"
    );
    env.finish().await;
}
