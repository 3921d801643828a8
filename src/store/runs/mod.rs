//! Run history (`partner_center_sync_runs`): one row per accepted trigger, counters updated
//! as pages commit so the UI shows live progress. The words a row is made of live in
//! `vocabulary`.

mod vocabulary;

pub use vocabulary::{Counts, Mode, RequestedMode, RunStatus, Trigger};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use super::StoreError;

/// A `partner_center_sync_runs` row as the HTTP API and the UI show it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RunRow {
    pub id: i64,
    pub(crate) trigger: Trigger,
    /// The pass the run made; `None` until a run asked for `auto` has decided, which the
    /// column, the API and the CLI spell `auto`.
    #[serde(serialize_with = "mode_or_auto")]
    #[schema(value_type = String, pattern = "^(auto|incremental|full)$")]
    pub(crate) mode: Option<Mode>,
    pub status: RunStatus,
    pub(crate) dry_run: bool,
    pub(crate) queued_at: DateTime<Utc>,
    pub(crate) started_at: Option<DateTime<Utc>>,
    pub(crate) finished_at: Option<DateTime<Utc>>,
    /// Null until the run has both started and finished.
    pub(crate) duration_seconds: Option<f64>,
    #[serde(flatten)]
    pub(crate) counts: Counts,
    pub error: Option<String>,
    pub(crate) host: Option<String>,
    pub(crate) pid: Option<i32>,
}

/// A row as the columns hold it: `query_as!` fills it, then it becomes a [`RunRow`], since
/// the macro can neither nest [`Counts`] nor widen its `integer` columns.
struct RunRecord {
    id: i64,
    trigger: Trigger,
    mode: Option<Mode>,
    status: RunStatus,
    dry_run: bool,
    queued_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    duration_seconds: Option<f64>,
    pages: i32,
    fetched: i32,
    inserted: i32,
    updated: i32,
    unchanged: i32,
    marked_missing: i32,
    parse_errors: i32,
    error: Option<String>,
    host: Option<String>,
    pid: Option<i32>,
}

impl From<RunRecord> for RunRow {
    fn from(r: RunRecord) -> Self {
        // The counters only ever grow from zero by clamped amounts, so never negative.
        let n = |v: i32| u64::try_from(v).unwrap_or(0);
        RunRow {
            id: r.id,
            trigger: r.trigger,
            mode: r.mode,
            status: r.status,
            dry_run: r.dry_run,
            queued_at: r.queued_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            duration_seconds: r.duration_seconds,
            counts: Counts {
                pages: n(r.pages),
                fetched: n(r.fetched),
                inserted: n(r.inserted),
                updated: n(r.updated),
                unchanged: n(r.unchanged),
                marked_missing: n(r.marked_missing),
                parse_errors: n(r.parse_errors),
            },
            error: r.error,
            host: r.host,
            pid: r.pid,
        }
    }
}

/// `query_as!` into [`RunRecord`] with the one column list between `$head` and `$tail`
/// (string literals: the macro checks the whole text at compile time, so it cannot take
/// the list from a constant).
macro_rules! run_records {
    ($head:literal, $tail:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            RunRecord,
            $head
                + r#" id AS "id!", trigger AS "trigger!: Trigger", NULLIF(mode, 'auto') AS "mode?: Mode",
                    status AS "status!: RunStatus", dry_run AS "dry_run!", queued_at AS "queued_at!",
                    started_at, finished_at,
                    EXTRACT(EPOCH FROM (finished_at - started_at))::float8 AS "duration_seconds?",
                    pages AS "pages!", fetched AS "fetched!", inserted AS "inserted!", updated AS "updated!",
                    unchanged AS "unchanged!", marked_missing AS "marked_missing!",
                    parse_errors AS "parse_errors!", error, host, pid "#
                + $tail
            $(, $arg)*
        )
    };
}

impl RunRow {
    /// The mode as the column holds it: the pass made, or `auto` while undecided.
    #[cfg(test)]
    fn mode_name(&self) -> &'static str {
        self.mode.map_or("auto", Mode::as_str)
    }
}

fn mode_or_auto<S: serde::Serializer>(mode: &Option<Mode>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(mode.map_or("auto", Mode::as_str))
}

/// What the HTTP trigger calls so it can answer with the run id before the run starts.
pub async fn create_queued(
    pool: &PgPool,
    trigger: Trigger,
    mode: RequestedMode,
    dry_run: bool,
) -> Result<i64, StoreError> {
    let id = sqlx::query_scalar!(
        "INSERT INTO partner_center_sync_runs (trigger, mode, status, dry_run, host)
         VALUES ($1, $2, 'queued', $3, $4) RETURNING id",
        trigger as Trigger,
        mode as RequestedMode,
        dry_run,
        hostname(),
    )
    .fetch_one(pool)
    .await?;
    Ok(id)
}

/// Moves a queued row to `running`, recording this process; returns the start time
/// (the database's clock), or `None` if the row is not queued (already run or closed).
pub async fn start(pool: &PgPool, id: i64) -> Result<Option<DateTime<Utc>>, StoreError> {
    let started = sqlx::query_scalar!(
        r#"UPDATE partner_center_sync_runs SET status = 'running', started_at = now(), host = $2, pid = $3
         WHERE id = $1 AND status = 'queued' RETURNING started_at AS "started_at!""#,
        id,
        hostname(),
        i32::try_from(std::process::id()).unwrap_or(i32::MAX),
    )
    .fetch_optional(pool)
    .await?;
    Ok(started)
}

pub(crate) async fn set_mode(pool: &PgPool, id: i64, mode: Mode) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE partner_center_sync_runs SET mode = $2 WHERE id = $1",
        id,
        mode as Mode,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Adds one batch's counts, inside the batch's transaction.
pub(crate) async fn add_progress(
    conn: &mut PgConnection,
    id: i64,
    p: &Counts,
) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE partner_center_sync_runs SET pages = pages + $2, fetched = fetched + $3,
             inserted = inserted + $4, updated = updated + $5, unchanged = unchanged + $6,
             marked_missing = marked_missing + $7, parse_errors = parse_errors + $8
         WHERE id = $1",
        id,
        clamp(p.pages),
        clamp(p.fetched),
        clamp(p.inserted),
        clamp(p.updated),
        clamp(p.unchanged),
        clamp(p.marked_missing),
        clamp(p.parse_errors),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Closes a run with its final status.
pub(crate) async fn finish(
    conn: &mut PgConnection,
    id: i64,
    status: RunStatus,
    error: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE partner_center_sync_runs SET status = $2, finished_at = now(), error = $3 WHERE id = $1",
        id,
        status as RunStatus,
        error,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Runs left `running` by a process that died. Only the holder of the sync lock may
/// call this: holding it proves no other process is running a sync right now.
pub async fn close_stale(pool: &PgPool, closed_by: Option<i64>) -> Result<Vec<RunRow>, StoreError> {
    let rows = run_records!(
        "UPDATE partner_center_sync_runs SET status = 'failed', finished_at = now(),
             error = 'The process running this sync stopped before it finished (found by a later run holding the sync lock). Pages it committed are kept; the next run re-reads the rest.'
         WHERE status = 'running' AND id IS DISTINCT FROM $1 RETURNING",
        "",
        closed_by,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(RunRow::from).collect())
}

/// Newest first; only runs with one of `statuses` unless it is empty.
pub async fn list(
    pool: &PgPool,
    statuses: &[RunStatus],
    limit: i64,
) -> Result<Vec<RunRow>, StoreError> {
    list_page(pool, statuses, limit, 0).await
}

/// [`list`] from the `offset`-th run on, for paging through the history.
pub(crate) async fn list_page(
    pool: &PgPool,
    statuses: &[RunStatus],
    limit: i64,
    offset: i64,
) -> Result<Vec<RunRow>, StoreError> {
    let rows = run_records!(
        "SELECT",
        "FROM partner_center_sync_runs WHERE cardinality($1::text[]) = 0 OR status = ANY($1)
         ORDER BY id DESC LIMIT $2 OFFSET $3",
        &status_names(statuses) as &[&str],
        limit.max(0),
        offset.max(0),
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(RunRow::from).collect())
}

/// How many runs [`list_page`] can page through.
pub(crate) async fn count(pool: &PgPool, statuses: &[RunStatus]) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM partner_center_sync_runs
           WHERE cardinality($1::text[]) = 0 OR status = ANY($1)"#,
        &status_names(statuses) as &[&str],
    )
    .fetch_one(pool)
    .await?)
}

fn status_names(statuses: &[RunStatus]) -> Vec<&'static str> {
    statuses.iter().map(|s| s.as_str()).collect()
}

/// A referral, or a field of one, that a run could not store as sent.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ParseError {
    pub id: i64,
    pub referral_id: Option<String>,
    /// The field (`details.dealValue`); `None` when the whole referral was unreadable.
    pub field: Option<String>,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

pub(crate) async fn parse_errors(
    pool: &PgPool,
    run_id: i64,
) -> Result<Vec<ParseError>, StoreError> {
    Ok(sqlx::query_as!(
        ParseError,
        "SELECT id, referral_id, field, reason, created_at FROM partner_center_sync_errors
         WHERE run_id = $1 ORDER BY id",
        run_id,
    )
    .fetch_all(pool)
    .await?)
}

pub async fn get(pool: &PgPool, id: i64) -> Result<Option<RunRow>, StoreError> {
    let row = run_records!("SELECT", "FROM partner_center_sync_runs WHERE id = $1", id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(RunRow::from))
}

/// The run in progress, else the oldest queued one.
pub async fn find_active(pool: &PgPool) -> Result<Option<RunRow>, StoreError> {
    let row = run_records!(
        "SELECT",
        "FROM partner_center_sync_runs WHERE status IN ('queued', 'running')
         ORDER BY (status = 'running') DESC, id ASC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(RunRow::from))
}

/// When the newest successful run (not a dry run) finished, on any host.
pub(crate) async fn last_success_at(pool: &PgPool) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(sqlx::query_scalar!(
        "SELECT max(finished_at) FROM partner_center_sync_runs WHERE status = 'succeeded' AND NOT dry_run",
    )
    .fetch_one(pool)
    .await?)
}

/// Runs a previous process of this host left `queued` will never start: closes them as
/// cancelled and says how many. Only `host`'s own: another host's queued run may be about
/// to start, and a run queued without a host name belongs to no one this can vouch for.
pub(crate) async fn close_leftover_queued(
    pool: &PgPool,
    host: Option<&str>,
) -> Result<u64, StoreError> {
    let closed = sqlx::query!(
        "UPDATE partner_center_sync_runs SET status = 'cancelled', finished_at = now(),
             error = 'The daemon stopped before this queued run started.'
         WHERE status = 'queued' AND host = $1",
        host,
    )
    .execute(pool)
    .await?
    .rows_affected();
    Ok(closed)
}

/// The columns are `integer`; a count past that is stored as the maximum.
fn clamp(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Overrides `hostname` so tests can run two "hosts" of an HA pair on one machine;
/// not for production use.
pub const TEST_HOSTNAME_VAR: &str = "PARTNER_CENTER_SYNC_TEST_HOSTNAME";

/// This host's name, recorded on the runs it queues and runs: operators read the history
/// of an HA pair by it, and a restart closes only its own host's leftovers. From
/// gethostname(2): the unit's `ProcSubset=pid` hides `/proc/sys/kernel/hostname`.
pub(crate) fn hostname() -> Option<String> {
    if let Ok(name) = std::env::var(TEST_HOSTNAME_VAR) {
        return Some(name).filter(|n| !n.is_empty());
    }
    // POSIX caps host names at 255 bytes (Linux at 64); one more for the NUL.
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let len = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..len]).trim().to_owned();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(v: impl Serialize) -> String {
        serde_json::to_string(&v).expect("serialises")
    }

    #[test]
    fn an_undecided_mode_is_shown_as_auto() {
        let row = RunRow {
            id: 3,
            trigger: Trigger::Manual,
            mode: None,
            status: RunStatus::Queued,
            dry_run: false,
            queued_at: Utc::now(),
            started_at: None,
            finished_at: None,
            duration_seconds: None,
            counts: Counts::default(),
            error: None,
            host: None,
            pid: None,
        };
        let v: serde_json::Value = serde_json::from_str(&json(&row)).expect("json");
        assert_eq!(
            (&v["trigger"], &v["mode"], &v["status"]),
            (&"manual".into(), &"auto".into(), &"queued".into())
        );
        assert_eq!(row.mode_name(), "auto");
    }
}
