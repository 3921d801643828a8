//! Where the tables land in a database that is not empty: another application's tables of
//! the same generic names, the old integration's `partner_center_referrals`, a database made
//! by an earlier version of this daemon, and `db_schema`. Run through the real binary where
//! an operator would (`migrate`, `run`) and the real sync engine against the emulator.

use crate::support;

use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use partner_center_sync::auth::TokenProvider;
use partner_center_sync::config::Config;
use partner_center_sync::metrics::Metrics;
use partner_center_sync::store;
use partner_center_sync::sync::{Mode, RunRequest, RunStatus, RunSummary, SyncEngine, Trigger};
use pc_emulator::{Emulator, EmulatorConfig};
use secrecy::SecretString;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use support::{Reaped, TestDb, command};
use tokio_util::sync::CancellationToken;

/// The real binary with `env`, waited for at most 60 s.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = command();
    c.args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().expect("binary starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            drop(Reaped(child));
            panic!("`{args:?}` did not end in 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One sync of `referrals` emulated referrals into `url`'s `schema`, as `sync` runs it.
async fn sync_once(url: &str, schema: &str, referrals: usize) -> RunSummary {
    let emu = Emulator::start(EmulatorConfig {
        referrals,
        auto_approve_after: Some(1),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config {
        enabled: true,
        client_id: Some(emu.client_id()),
        tenant_id: Some(emu.tenant_id()),
        api_url: emu.api_url().parse().expect("api url"),
        authority_url: emu.authority_url().parse().expect("authority url"),
        token_cache: dir.path().join("msal_token_cache.json"),
        database_url: Some(SecretString::from(url.to_owned())),
        db_schema: schema.to_owned(),
        ..Config::default()
    };
    config.http_timeout = Duration::from_secs(10);
    partner_center_sync::auth::login(&config, true)
        .await
        .expect("device-code login against the emulator");
    let pool = store::connect(config.database_url.as_ref().expect("url"), schema)
        .await
        .expect("connect");
    store::migrate(&pool).await.expect("migrate");
    let config = Arc::new(config);
    let http = partner_center_sync::outbound::http_client(&config).expect("http client");
    let tokens = TokenProvider::new(&config, http).expect("token provider");
    let engine = SyncEngine::new(config, pool.clone(), tokens, Metrics::new()).expect("engine");
    let request = RunRequest {
        trigger: Trigger::Cli,
        ..RunRequest::default()
    };
    let summary = engine
        .run(request, CancellationToken::new())
        .await
        .expect("sync");
    pool.close().await;
    summary
}

/// Every table, column (type, default, nullability), constraint, index and function in
/// `schema`, one per line and sorted: two databases with equal catalogs cannot be told
/// apart by any query.
async fn catalog(pool: &PgPool, schema: &str) -> String {
    sqlx::query_scalar(
        "SELECT coalesce(string_agg(x, E'\\n' ORDER BY x), '') FROM (
             SELECT 'rel ' || c.relname || ' ' || c.relkind::text
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1
           UNION ALL
             SELECT 'col ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                    || ' ' || a.attnotnull::text || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             WHERE n.nspname = $1 AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
           UNION ALL
             SELECT 'con ' || co.conname || ' ' || pg_get_constraintdef(co.oid)
             FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace WHERE n.nspname = $1
           UNION ALL
             SELECT 'idx ' || indexdef FROM pg_indexes WHERE schemaname = $1
           UNION ALL
             SELECT 'fn ' || p.proname || '(' || pg_get_function_arguments(p.oid) || ')'
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1
         ) t(x)",
    )
    .bind(schema)
    .fetch_one(pool)
    .await
    .expect("catalog")
}

/// A table's definition (columns, indexes) and its rows as JSON, in physical order.
async fn snapshot(pool: &PgPool, table: &str) -> (String, String) {
    let definition: String = sqlx::query_scalar(
        "SELECT (SELECT string_agg(column_name || ' ' || data_type || ' ' || coalesce(column_default, ''), ', ' ORDER BY ordinal_position)
                 FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1)
                || ' | ' || coalesce((SELECT string_agg(indexdef, ', ' ORDER BY indexname)
                 FROM pg_indexes WHERE schemaname = 'public' AND tablename = $1), '')",
    )
    .bind(table)
    .fetch_one(pool)
    .await
    .expect("definition");
    let rows: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT json_agg(t)::text FROM public.{table} t"
    )))
    .fetch_one(pool)
    .await
    .expect("rows");
    (definition, rows.unwrap_or_default())
}

async fn exec(pool: &PgPool, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(pool)
        .await
        .expect("count")
}

/// Hunter's own tables, named as generically as this daemon's once were, with rows, and
/// a `_sqlx_migrations` of an application of its own.
const ANOTHER_APPLICATION: &str = "
    CREATE TABLE companies (id serial PRIMARY KEY, name text NOT NULL, website text);
    CREATE INDEX companies_name_idx ON companies (name);
    INSERT INTO companies (name, website) VALUES ('Contoso', 'contoso.example'), ('Fabrikam', NULL);
    CREATE TABLE sync_runs (id bigserial PRIMARY KEY, source text, ok boolean);
    INSERT INTO sync_runs (source, ok) VALUES ('crm', true);
    CREATE TABLE sync_state (key text PRIMARY KEY, value text);
    INSERT INTO sync_state VALUES ('crm_cursor', '2026-01-01');
    CREATE TABLE sync_errors (id serial PRIMARY KEY, message text);
    INSERT INTO sync_errors (message) VALUES ('timeout');
    CREATE TABLE _sqlx_migrations (version bigint PRIMARY KEY, description text NOT NULL,
        installed_on timestamptz NOT NULL DEFAULT now(), success boolean NOT NULL,
        checksum bytea NOT NULL, execution_time bigint NOT NULL);
    INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
        VALUES (20240101000000, 'hunter init', true, '\\x00ff', 5);
";

const THEIR_TABLES: [&str; 5] = [
    "companies",
    "sync_runs",
    "sync_state",
    "sync_errors",
    "_sqlx_migrations",
];

#[tokio::test]
async fn another_applications_tables_of_the_same_names_are_never_touched() {
    let db = TestDb::empty().await;
    exec(&db.pool, ANOTHER_APPLICATION).await;
    let mut before = Vec::new();
    for table in THEIR_TABLES {
        before.push(snapshot(&db.pool, table).await);
    }

    let o = run(&["migrate"], &[("DATABASE_URL", &db.url)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let summary = sync_once(&db.url, "public", 30).await;
    assert_eq!(
        (summary.status, summary.counts.inserted),
        (RunStatus::Succeeded, 30),
        "{summary}"
    );

    for (table, was) in THEIR_TABLES.iter().zip(before) {
        assert_eq!(snapshot(&db.pool, table).await, was, "{table} was changed");
    }
    assert!(count(&db.pool, "partner_center_companies").await > 0);
    assert_eq!(count(&db.pool, "partner_center_sync_runs").await, 1);
}

/// The old integration's table as it might look: other columns, a few rows.
const LEGACY_TABLE: &str = "
    CREATE TABLE partner_center_referrals (
        referral_id text PRIMARY KEY, customer_name text, status text,
        deal_value numeric(12, 2), updated timestamp);
    CREATE INDEX partner_center_referrals_status_idx ON partner_center_referrals (status);
    INSERT INTO partner_center_referrals VALUES
        ('a1', 'Contoso', 'Active', 1200.00, '2025-11-02 10:00'),
        ('a2', 'Fabrikam', 'Won', 80.50, '2025-11-03 11:00'),
        ('a3', 'Northwind', 'New', NULL, NULL);
";

#[tokio::test]
async fn an_old_integrations_table_is_refused_then_adopted_and_the_first_sync_is_full() {
    let db = TestDb::empty().await;
    exec(&db.pool, LEGACY_TABLE).await;
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("HUNTER_PARTNER_CENTER_LISTEN", "127.0.0.1:0"),
        ("HUNTER_PARTNER_CENTER_SYNC_ON_STARTUP", "false"),
    ];

    for args in [&["migrate"][..], &["run"][..]] {
        let o = run(args, &env);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(78), "{args:?}: {err}");
        for part in [
            "public.partner_center_referrals (3 rows; columns: referral_id text, customer_name text, status text, deal_value numeric(12,2), updated timestamp without time zone)",
            "Nothing was changed",
            "partner-center-sync migrate --adopt-legacy",
            "db_schema",
        ] {
            assert!(err.contains(part), "{args:?} does not say {part:?}: {err}");
        }
    }
    assert_eq!(count(&db.pool, "partner_center_referrals").await, 3);
    let untouched: bool =
        sqlx::query_scalar("SELECT to_regclass('partner_center_sync_migrations') IS NULL")
            .fetch_one(&db.pool)
            .await
            .expect("regclass");
    assert!(untouched, "the refusal created tables");

    let o = run(&["migrate", "--adopt-legacy"], &env);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        out.contains("to partner_center_referrals_legacy (3 rows kept)"),
        "{out}"
    );
    assert!(
        text(&o.stderr).contains("legacy_table_adopted"),
        "no log event: {}",
        text(&o.stderr)
    );
    let legacy: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT referral_id, customer_name FROM partner_center_referrals_legacy ORDER BY referral_id",
    )
    .fetch_all(&db.pool)
    .await
    .expect("legacy rows");
    assert_eq!(legacy.len(), 3);
    assert_eq!(legacy[0], ("a1".to_owned(), Some("Contoso".to_owned())));
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE tablename = 'partner_center_referrals_legacy' ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .expect("indexes");
    assert_eq!(
        indexes,
        [
            "partner_center_referrals_legacy_pkey",
            "partner_center_referrals_legacy_status_idx"
        ]
    );

    let summary = sync_once(&db.url, "public", 40).await;
    assert_eq!(
        (summary.mode, summary.status, summary.counts.inserted),
        (Some(Mode::Full), RunStatus::Succeeded, 40),
        "{summary}"
    );
    assert_eq!(count(&db.pool, "partner_center_referrals").await, 40);
    assert_eq!(count(&db.pool, "partner_center_referrals_legacy").await, 3);
    let again = run(&["migrate", "--adopt-legacy"], &env);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert!(
        text(&again.stdout).contains("nothing to adopt"),
        "{}",
        text(&again.stdout)
    );
}

/// Rows in every table of the first versions, including the ids their sequences handed out.
const EARLIER_ROWS: &str = "
    INSERT INTO partner_center_referrals (id, status, updated_at, payload)
        VALUES ('r1', 'Active', '2026-01-01T00:00:00Z', '{\"id\":\"r1\"}'),
               ('r2', 'Won', '2026-01-02T00:00:00Z', '{\"id\":\"r2\"}');
    INSERT INTO sync_runs (trigger, mode, status, started_at, finished_at, fetched, inserted)
        VALUES ('schedule', 'full', 'succeeded', now() - interval '1 hour', now() - interval '59 minutes', 2, 2),
               ('manual', 'incremental', 'failed', now(), now(), 0, 0);
    INSERT INTO sync_state (watermark, last_full_at) VALUES ('2026-01-02T00:00:00Z', '2026-01-02T00:00:00Z');
    INSERT INTO companies (domain, name, referral_count) VALUES ('contoso.example', 'Contoso', 2);
    INSERT INTO sync_errors (run_id, referral_id, reason) VALUES (1, 'r3', 'dealValue is not a number');
";

/// Each table's rows as JSON, in key order, before and after the renames; without the
/// column 0003 adds to `sync_errors`, which a database from before it gains empty.
async fn earlier_rows(pool: &PgPool, names: [&str; 5]) -> Vec<String> {
    let mut all = Vec::new();
    for (table, key) in names.iter().zip(["id", "id", "id", "domain", "id"]) {
        all.push(
            sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!(
                "SELECT json_agg(to_jsonb(t) - 'field' ORDER BY {key})::text FROM {table} t"
            )))
            .fetch_one(pool)
            .await
            .expect("rows"),
        );
    }
    all
}

#[tokio::test]
async fn a_database_of_the_first_versions_is_renamed_in_place_keeping_every_row() {
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/migrations_v0_1");
    let old = Migrator::new(fixtures).await.expect("old migrations");
    // Today's migrations: the upgrade applies those the earlier version did not have.
    let today =
        std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations"))
            .expect("migrations/")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
            })
            .count() as i64;
    let fresh = TestDb::new().await;
    let fresh_catalog = catalog(&fresh.pool, "public").await;

    // A database made by a version with all four migrations, and one from before 0003.
    for applied in [4, 2] {
        let db = TestDb::empty().await;
        old.run_to(applied, &db.pool)
            .await
            .expect("old migrations apply");
        exec(&db.pool, EARLIER_ROWS).await;
        let before = earlier_rows(
            &db.pool,
            [
                "partner_center_referrals",
                "sync_runs",
                "sync_state",
                "companies",
                "sync_errors",
            ],
        )
        .await;

        let o = run(&["migrate"], &[("DATABASE_URL", &db.url)]);
        let out = text(&o.stdout);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        assert!(
            out.contains("Renamed the tables of an earlier version"),
            "{out}"
        );
        assert!(
            out.contains(&format!("Applied {} migration(s)", today - applied)),
            "{out}"
        );

        let after = earlier_rows(
            &db.pool,
            [
                "partner_center_referrals",
                "partner_center_sync_runs",
                "partner_center_sync_state",
                "partner_center_companies",
                "partner_center_sync_errors",
            ],
        )
        .await;
        assert_eq!(after, before, "rows changed in the upgrade from {applied}");
        assert_eq!(
            catalog(&db.pool, "public").await,
            fresh_catalog,
            "an upgraded database (from {applied}) differs from a fresh one"
        );
        let checksums: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT version, checksum FROM partner_center_sync_migrations ORDER BY version",
        )
        .fetch_all(&db.pool)
        .await
        .expect("recorded");
        let expected: Vec<(i64, Vec<u8>)> = store::MIGRATOR
            .iter()
            .map(|m| (m.version, m.checksum.to_vec()))
            .collect();
        assert_eq!(checksums, expected);

        let again = run(&["migrate"], &[("DATABASE_URL", &db.url)]);
        assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
        assert!(
            text(&again.stdout).starts_with("Applied 0 migration(s)"),
            "{}",
            text(&again.stdout)
        );
        let summary = sync_once(&db.url, "public", 5).await;
        assert_eq!(summary.status, RunStatus::Succeeded, "{summary}");
        assert_eq!(
            summary.run_id,
            Some(3),
            "the renamed sequence goes on after the earlier runs"
        );
    }
}

#[tokio::test]
async fn db_schema_puts_every_object_in_its_schema() {
    let db = TestDb::empty().await;
    let public_before = catalog(&db.pool, "public").await;
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("HUNTER_PARTNER_CENTER_DB_SCHEMA", "partner_center"),
    ];
    let o = run(&["migrate"], &env);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("the schema `partner_center` is current"),
        "{}",
        text(&o.stdout)
    );
    let summary = sync_once(&db.url, "partner_center", 12).await;
    assert_eq!(summary.counts.inserted, 12, "{summary}");

    assert_eq!(catalog(&db.pool, "public").await, public_before);
    let ours = catalog(&db.pool, "partner_center").await;
    for object in [
        "rel partner_center_referrals r",
        "rel partner_center_sync_runs r",
        "rel partner_center_sync_state r",
        "rel partner_center_companies r",
        "rel partner_center_sync_errors r",
        "rel partner_center_sync_migrations r",
        "fn partner_center_payload_timestamp(raw text)",
    ] {
        assert!(
            ours.contains(object),
            "{object} is not in the schema: {ours}"
        );
    }
    assert_eq!(
        count(&db.pool, "partner_center.partner_center_referrals").await,
        12
    );

    let bad = run(
        &["migrate"],
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("HUNTER_PARTNER_CENTER_DB_SCHEMA", "Sales-Data"),
        ],
    );
    let err = text(&bad.stderr);
    assert_eq!(bad.status.code(), Some(78), "{err}");
    assert!(
        err.contains("db_schema") && err.contains("HUNTER_PARTNER_CENTER_DB_SCHEMA"),
        "{err}"
    );
    assert!(
        err.contains("`Sales-Data` is not a plain PostgreSQL schema name"),
        "{err}"
    );
}
