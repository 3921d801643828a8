//! The sync engine against real PostgreSQL (and, end to end, the real emulator).

use chrono::{DateTime, Utc};
use partner_center_sync::store::referrals::{self, ReferralRow};
use partner_center_sync::store::{companies, lock, runs};
use partner_center_sync::sync::extract;
use serde_json::value::RawValue;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// A fresh, migrated database on the local server, dropped at the end of the test.
struct Db {
    pool: PgPool,
    name: String,
}

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

impl Db {
    async fn new() -> Db {
        let name = format!("pcs_sync_{}", uuid::Uuid::new_v4().simple());
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&format!("{SERVER}/postgres"))
            .await
            .expect("admin");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("create db");
        admin.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect(&format!("{SERVER}/{name}"))
            .await
            .expect("connect");
        partner_center_sync::store::migrate(&pool)
            .await
            .expect("migrate");
        Db { pool, name }
    }

    async fn drop_db(self) {
        self.pool.close().await;
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&format!("{SERVER}/postgres"))
            .await
            .expect("admin");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&admin)
        .await
        .expect("drop db");
    }
}

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
    let db = Db::new().await;
    let pool = &db.pool;
    let t0 = seen_at(pool).await;
    let mut tx = pool.begin().await.expect("tx");
    let rows = [
        row("a", "New", "2025-01-01T00:00:00Z", "x@contoso.com"),
        row("b", "New", "2025-01-01T00:00:00Z", "y@contoso.com"),
    ];
    let out = referrals::upsert(&mut tx, &rows, t0, true)
        .await
        .expect("upsert");
    assert_eq!((out.inserted, out.updated, out.unchanged), (2, 0, 0));
    assert_eq!(out.domains, vec!["contoso.com".to_owned()]);
    companies::refresh(&mut tx, &out.domains)
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
    let out = referrals::upsert(&mut tx, &rows, t0, false)
        .await
        .expect("upsert");
    assert_eq!((out.inserted, out.updated, out.unchanged), (0, 1, 1));
    let mut domains = out.domains.clone();
    domains.sort();
    assert_eq!(domains, ["contoso.com", "fabrikam.com"]);
    companies::refresh(&mut tx, &out.domains)
        .await
        .expect("companies");
    tx.commit().await.expect("commit");

    let companies: Vec<(String, i32, Option<String>)> = sqlx::query_as(
        "SELECT domain, referral_count, latest_status FROM companies ORDER BY domain",
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
    db.drop_db().await;
}

#[tokio::test]
async fn full_pass_marks_unreturned_referrals_missing_and_clears_them_on_return() {
    let db = Db::new().await;
    let pool = &db.pool;
    let t0 = seen_at(pool).await;
    let mut tx = pool.begin().await.expect("tx");
    let both = [
        row("a", "New", "2025-01-01T00:00:00Z", "x@contoso.com"),
        row("b", "New", "2025-01-01T00:00:00Z", "y@contoso.com"),
    ];
    referrals::upsert(&mut tx, &both, t0, true)
        .await
        .expect("upsert");
    tx.commit().await.expect("commit");

    let t1 = seen_at(pool).await;
    let mut tx = pool.begin().await.expect("tx");
    let out = referrals::upsert(&mut tx, &both[..1], t1, true)
        .await
        .expect("upsert");
    assert_eq!(
        (out.inserted, out.updated, out.unchanged),
        (0, 0, 1),
        "a stamped, not counted as updated"
    );
    let marked = referrals::mark_missing(&mut tx, t1).await.expect("mark");
    assert_eq!(marked.ids, ["b"]);
    tx.commit().await.expect("commit");

    let t2 = seen_at(pool).await;
    let mut tx = pool.begin().await.expect("tx");
    referrals::upsert(&mut tx, &both, t2, true)
        .await
        .expect("upsert");
    assert_eq!(
        referrals::mark_missing(&mut tx, t2)
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
    db.drop_db().await;
}

#[tokio::test]
async fn the_sync_lock_admits_one_holder_and_frees_on_release() {
    let db = Db::new().await;
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
    db.drop_db().await;
}

#[tokio::test]
async fn stale_running_rows_are_closed_but_queued_ones_are_kept() {
    let db = Db::new().await;
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
    assert_eq!(runs::list(pool, 10).await.expect("list").len(), 2);
    db.drop_db().await;
}
