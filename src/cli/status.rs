//! `status`: sign-in state, the last sync runs and the daemon's health.
//!
//! The running daemon is asked first (`/healthz`, and the run list with `api_token` when
//! one is set): it holds the service's token cache, credentials and database, which an
//! operator's shell may not see (another user, no `$STATE_DIRECTORY`, no
//! `LoadCredential=`). Only when nothing answers at `listen` does `status` read the token
//! cache and the database itself.

use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::{CommandError, Exit};
use crate::config::Config;
use crate::{auth, store};

/// How many runs are shown.
const RUNS: i64 = 5;
/// A daemon that does not answer within this is reported as not answering.
const DAEMON_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the report came from.
enum Source {
    /// The daemon at `listen` answered with its `/healthz`.
    Daemon(Value),
    /// Nothing answered (the reason); the token cache and the database were read here.
    Local(String),
}

struct Report {
    source: Source,
    enabled: bool,
    /// The sign-in as JSON: the daemon's `auth` object, or the local cache's report.
    auth: Value,
    /// The sign-in as text.
    auth_text: String,
    /// The sign-in-required sentence (with its reason) when one is needed.
    sign_in_required: Option<String>,
    /// Newest first, as the API's `sync-runs` shows them.
    runs: Result<Vec<Value>, String>,
}

/// Each part is best effort: a stopped daemon or an unreachable database is reported,
/// not fatal, so `status` works when something is wrong, which is when it is needed.
/// Exits 77 when a sign-in is required, so scripts can alert on it.
pub(super) async fn run(config: &Config, json: bool) -> Result<(), CommandError> {
    let report = match ask_daemon(config).await {
        Ok(daemon) => daemon,
        Err(reason) => read_locally(config, reason).await,
    };
    if json {
        let value = json!({
            "source": match report.source { Source::Daemon(_) => "daemon", Source::Local(_) => "local" },
            "partner_center_enabled": report.enabled,
            "auth": report.auth,
            "runs": match &report.runs {
                Ok(r) => json!(r),
                Err(e) => json!({"error": e}),
            },
            "daemon": match &report.source {
                Source::Daemon(health) => health.clone(),
                Source::Local(e) => json!({"running": false, "error": e}),
            },
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value)
                .map_err(|e| CommandError::new(Exit::Failure, e))?
        );
    } else {
        print_text(config, &report);
    }
    if let Some(message) = report.sign_in_required {
        return Err(CommandError::new(Exit::SignInRequired, message));
    }
    Ok(())
}

fn print_text(config: &Config, report: &Report) {
    println!(
        "Partner Center integration: {}",
        if report.enabled {
            "enabled"
        } else {
            "disabled"
        }
    );
    println!("{}", report.auth_text);
    match &report.runs {
        Ok(rows) if rows.is_empty() => println!("Runs: none yet"),
        Ok(rows) => {
            println!("Last runs:");
            for r in rows {
                println!("  {}", run_line(r));
            }
        }
        Err(e) => println!("Runs: unavailable ({e})"),
    }
    match &report.source {
        Source::Daemon(h) => println!(
            "Daemon: running at http://{} (version {}, database reachable: {}, next run: {}); \
             sign-in and runs are as the daemon reports them.",
            config.listen,
            h["version"].as_str().unwrap_or("unknown"),
            h["database"]["reachable"],
            h["next_run_at"]
                .as_str()
                .unwrap_or(if h.get("auth").is_none() {
                    "unknown"
                } else {
                    "none"
                })
        ),
        Source::Local(e) => println!(
            "Daemon: not answering at http://{} ({e}); sign-in and runs are read from this \
             shell's token cache and database.",
            config.listen
        ),
    }
}

/// `#12 schedule incremental succeeded queued 2026-… fetched 5 inserted 5 updated 0`.
fn run_line(r: &Value) -> String {
    let n = |k: &str| r[k].as_i64().unwrap_or(0);
    let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
    let queued = chrono::DateTime::parse_from_rfc3339(&s("queued_at")).map_or_else(
        |_| s("queued_at"),
        |t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()
        },
    );
    let mut line = format!(
        "#{} {} {} {} queued {queued} fetched {} inserted {} updated {}",
        n("id"),
        s("trigger"),
        s("mode"),
        s("status"),
        n("fetched"),
        n("inserted"),
        n("updated")
    );
    // Referrals (or fields) not stored as sent; `partner_center_sync_errors` has them.
    if n("parse_errors") > 0 {
        line.push_str(&format!(" errors {}", n("parse_errors")));
    }
    if let Some(e) = r["error"].as_str() {
        line.push_str(&format!(" error: {e}"));
    }
    line
}

/// The daemon's view: `/healthz` (open), then the run list (with `api_token` when set;
/// without the right token only the last run from `/healthz` is shown).
async fn ask_daemon(config: &Config) -> Result<Report, String> {
    let client = reqwest::Client::builder()
        .timeout(DAEMON_TIMEOUT)
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let base = format!("http://{}", config.listen);
    let mut health_request = client.get(format!("{base}/healthz"));
    // Without the token a daemon with `api_token` shows only its public summary.
    if let Some(token) = &config.api_token {
        health_request = health_request.bearer_auth(token.expose_secret());
    }
    let health: Value = health_request
        .send()
        .await
        .map_err(|e| {
            if e.is_connect() {
                "not running".to_owned()
            } else {
                e.to_string()
            }
        })?
        .error_for_status()
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| format!("its /healthz is not this program's: {e}"))?;
    let mut request = client
        .get(format!("{base}/api/v1/partner-center/sync-runs"))
        .query(&[("limit", RUNS)]);
    if let Some(token) = &config.api_token {
        request = request.bearer_auth(token.expose_secret());
    }
    let listed = async {
        let list: Value = request
            .send()
            .await
            .ok()?
            .error_for_status()
            .ok()?
            .json()
            .await
            .ok()?;
        list["items"].as_array().cloned()
    };
    // Without the right token a daemon with `api_token` answers `/healthz` in its public
    // form: no `auth` object, no runs, only the `signed_in`/`sign_in_required` flags.
    let public = health.get("auth").is_none();
    let runs = match listed.await {
        Some(items) => Ok(items),
        None if public => {
            Err("the daemon shows them only to a caller with its `api_token`".to_owned())
        }
        None => Ok(health["current_run"]
            .as_object()
            .into_iter()
            .chain(health["last_run"].as_object())
            .map(|r| Value::Object(r.clone()))
            .collect()),
    };
    let auth = if public {
        let state = if health["sign_in_required"] == true {
            "sign_in_required"
        } else if health["signed_in"] == true {
            "signed_in"
        } else {
            "unknown"
        };
        json!({ "state": state })
    } else {
        health["auth"].clone()
    };
    let state = auth["state"].as_str().unwrap_or("unknown");
    // The daemon's message is the whole sentence ("Sign-in required: run …").
    let sign_in_required = (state == "sign_in_required").then(|| {
        auth["message"].as_str().map_or_else(
            || auth::SignInRequired::new("the daemon reports it").to_string(),
            str::to_owned,
        )
    });
    let auth_text = match state {
        "sign_in_required" => sign_in_required.clone().unwrap_or_default(),
        "signed_in" if public => {
            "Sign-in: signed in (the daemon names the account only with its `api_token`)".to_owned()
        }
        "signed_in" => format!(
            "Sign-in: signed in as {} (access token valid until {})",
            auth["account"].as_str().unwrap_or("(unknown account)"),
            auth["access_token_expires_at"]
                .as_str()
                .unwrap_or("unknown")
        ),
        _ => "Sign-in: not checked yet by the daemon (it asks for a token when a run needs one)"
            .to_owned(),
    };
    Ok(Report {
        enabled: health["partner_center_enabled"].as_bool().unwrap_or(false),
        sign_in_required,
        auth,
        auth_text,
        runs,
        source: Source::Daemon(health),
    })
}

/// This shell's token cache and database, for when no daemon answers.
async fn read_locally(config: &Config, daemon: String) -> Report {
    let auth = if config.client_id.is_some() && config.tenant_id.is_some() {
        Some(auth::status(config))
    } else {
        None
    };
    let runs = match &config.database_url {
        Some(url) => match store::connect(url, &config.db_schema).await {
            Ok(pool) => {
                let runs = store::runs::list(&pool, &[], RUNS).await;
                pool.close().await;
                runs.map_err(|e| e.to_string())
                    .map(|rows| rows.iter().map(|r| json!(r)).collect())
            }
            Err(e) => Err(e.to_string()),
        },
        None => Err("database_url is not set".to_owned()),
    };
    Report {
        source: Source::Local(daemon),
        enabled: config.enabled,
        sign_in_required: match &auth {
            Some(Ok(r)) => r.sign_in_required().map(|required| required.to_string()),
            Some(Err(auth::AuthError::SignInRequired(required))) => Some(required.to_string()),
            _ => None,
        },
        auth: match &auth {
            Some(Ok(r)) => serde_json::to_value(r).unwrap_or_default(),
            Some(Err(e)) => json!({"error": e.to_string()}),
            None => json!({"error": "client_id and tenant_id are not configured"}),
        },
        auth_text: match &auth {
            Some(Ok(r)) => r.to_string(),
            Some(Err(e)) => format!("Sign-in: {e}"),
            None => "Sign-in: not configured (set client_id and tenant_id)".to_owned(),
        },
        runs,
    }
}
