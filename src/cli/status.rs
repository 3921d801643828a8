//! `status`: sign-in state, the last sync runs and, when it runs, the daemon's health.

use super::{CommandError, Exit};
use crate::config::Config;
use crate::{auth, store};

/// Each part is best effort: a stopped daemon or an unreachable database is reported,
/// not fatal, so `status` works when something is wrong, which is when it is needed.
/// Exits 77 when a sign-in is required, so scripts can alert on it.
pub(super) async fn run(config: &Config, json: bool) -> Result<(), CommandError> {
    let auth = if config.client_id.is_some() && config.tenant_id.is_some() {
        Some(auth::status(config))
    } else {
        None
    };
    let runs = match &config.database_url {
        Some(url) => match store::connect(url).await {
            Ok(pool) => {
                let runs = store::runs::list(&pool, &[], 5).await;
                pool.close().await;
                runs.map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        },
        None => Err("database_url is not set".to_owned()),
    };
    let health = daemon_health(config).await;
    let sign_in_required = matches!(&auth, Some(Ok(r)) if r.sign_in_required)
        || matches!(&auth, Some(Err(e)) if e.is_sign_in_required());
    if json {
        let value = serde_json::json!({
            "partner_center_enabled": config.enabled,
            "auth": match &auth {
                Some(Ok(r)) => serde_json::to_value(r).unwrap_or_default(),
                Some(Err(e)) => serde_json::json!({"error": e.to_string()}),
                None => serde_json::json!({"error": "client_id and tenant_id are not configured"}),
            },
            "runs": match &runs {
                Ok(r) => serde_json::to_value(r).unwrap_or_default(),
                Err(e) => serde_json::json!({"error": e}),
            },
            "daemon": health.as_ref().map_or_else(|e| serde_json::json!({"running": false, "error": e}), |h| h.clone()),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value)
                .map_err(|e| CommandError::new(Exit::Failure, e))?
        );
    } else {
        println!(
            "Partner Center integration: {}",
            if config.enabled {
                "enabled"
            } else {
                "disabled"
            }
        );
        match &auth {
            Some(Ok(r)) => println!("{r}"),
            Some(Err(e)) => println!("Sign-in: {e}"),
            None => println!("Sign-in: not configured (set client_id and tenant_id)"),
        }
        match &runs {
            Ok(rows) if rows.is_empty() => println!("Runs: none yet"),
            Ok(rows) => {
                println!("Last runs:");
                for r in rows {
                    println!(
                        "  #{} {} {} {} queued {} fetched {} inserted {} updated {}{}{}",
                        r.id,
                        r.trigger,
                        r.mode_name(),
                        r.status,
                        r.queued_at.format("%Y-%m-%d %H:%M:%S UTC"),
                        r.counts.fetched,
                        r.counts.inserted,
                        r.counts.updated,
                        // Referrals (or fields) not stored as sent; `sync_errors` has them.
                        match r.counts.parse_errors {
                            0 => String::new(),
                            n => format!(" errors {n}"),
                        },
                        r.error
                            .as_deref()
                            .map(|e| format!(" error: {e}"))
                            .unwrap_or_default()
                    );
                }
            }
            Err(e) => println!("Runs: unavailable ({e})"),
        }
        match &health {
            Ok(h) => println!(
                "Daemon: running at http://{} (database reachable: {}, next run: {})",
                config.listen,
                h["database"]["reachable"],
                h["next_run_at"].as_str().unwrap_or("none")
            ),
            Err(e) => println!("Daemon: not reachable at http://{} ({e})", config.listen),
        }
    }
    if sign_in_required {
        return Err(CommandError::new(
            Exit::SignInRequired,
            "Sign-in required: run `partner-center-sync login`.",
        ));
    }
    Ok(())
}

async fn daemon_health(config: &Config) -> Result<serde_json::Value, String> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let mut request = client.get(format!("http://{}/healthz", config.listen));
    // Without the token a daemon with `api_token` shows only its public summary.
    if let Some(token) = &config.api_token {
        request = request.bearer_auth(secrecy::ExposeSecret::expose_secret(token));
    }
    let response = request.send().await.map_err(|e| {
        if e.is_connect() {
            "not running".to_owned()
        } else {
            e.to_string()
        }
    })?;
    response.json().await.map_err(|e| e.to_string())
}
