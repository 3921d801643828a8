//! Checks across keys, after each value parsed: what is required when enabled, https
//! outside loopback, ranges, the cron syntax. Every problem is reported, not the first.

use std::time::Duration;

use secrecy::ExposeSecret;
use url::Url;

use super::parse::Values;
use super::{Config, Source};

pub(super) fn validate(c: &Config, conv: &mut Values) {
    if c.enabled {
        if c.client_id.as_deref().is_none_or(str::is_empty) {
            conv.problem(
                "client_id",
                "is required when the integration is enabled".into(),
                "set it to the Entra app (client) id",
            );
        }
        if c.tenant_id.as_deref().is_none_or(str::is_empty) {
            conv.problem(
                "tenant_id",
                "is required when the integration is enabled".into(),
                "set it to the partner tenant's GUID or domain, or `organizations`",
            );
        }
    }
    if let Some(t) = &c.tenant_id
        && !t.is_empty()
        && !valid_tenant(t)
    {
        conv.problem(
            "tenant_id",
            format!("`{t}` is not a tenant GUID, a domain or `organizations`"),
            "use the partner tenant's GUID (best), its domain, or `organizations`",
        );
    }
    for (key, url) in [("api_url", &c.api_url), ("authority_url", &c.authority_url)] {
        if url.scheme() != "https" && !(url.scheme() == "http" && is_loopback(url)) {
            conv.problem(
                key,
                format!("`{url}` must use https (plain http is allowed only for loopback hosts)"),
                "use an https:// URL",
            );
        }
    }
    if let Some(public) = &c.public_url
        && !Url::parse(public).is_ok_and(|u| u.has_host() && matches!(u.scheme(), "http" | "https"))
    {
        conv.problem(
            "public_url",
            format!("`{public}` is not an absolute http(s) URL"),
            "write the address users open the web UI at, e.g. https://sync.example.com",
        );
    }
    if c.notify_digest_over == 0 {
        conv.problem(
            "notify_digest_over",
            "must be at least 1".into(),
            "use e.g. 10: a run with more events for one destination sends one digest",
        );
    }
    if c.notify_unhealthy_after == 0 {
        conv.problem(
            "notify_unhealthy_after",
            "must be at least 1".into(),
            "use e.g. 3",
        );
    }
    if c.sync_interval < Duration::from_secs(1) || c.sync_interval > Duration::from_secs(7 * 86400)
    {
        conv.problem(
            "sync_interval",
            "must be between 1 second and 7 days".into(),
            "use e.g. 600 (production) or 30-60 (development)",
        );
    }
    if let Some(cron) = &c.sync_cron {
        if let Err(e) = parse_cron(cron) {
            conv.problem(
                "sync_cron",
                format!("`{cron}` is not a 6-field cron expression: {e}"),
                "write seconds first, e.g. \"0 */10 * * * *\"",
            );
        } else if conv.sources.get("sync_interval") != Some(&Source::Default) {
            conv.problem(
                "sync_cron",
                "is set together with an explicit sync_interval".into(),
                "set either sync_interval (HUNTER_PARTNER_CENTER_SYNC_INTERVAL) or sync_cron, not both",
            );
        }
    }
    if let Some(db) = &c.database_url {
        let s = db.expose_secret();
        if !(s.starts_with("postgres://") || s.starts_with("postgresql://")) {
            conv.problem(
                "database_url",
                "is not a postgres:// URL".into(),
                "use postgres://USER:PASSWORD@HOST:PORT/DATABASE",
            );
        }
    }
    if !valid_schema_name(&c.db_schema) {
        conv.problem(
            "db_schema",
            format!("`{}` is not a plain PostgreSQL schema name", c.db_schema),
            "use lowercase letters, digits and underscores, starting with a letter or underscore, at most 63 characters and not starting with pg_ (e.g. partner_center), or leave it unset for public",
        );
    }
    if !c.listen.ip().to_canonical().is_loopback()
        && c.api_token.is_none()
        && !c.allow_unauthenticated_network
    {
        conv.problem(
            "listen",
            format!(
                "`{}` is reachable from the network but `api_token` is not set, so anyone who can reach it could start runs and read every referral",
                c.listen
            ),
            "set `api_token` (HUNTER_PARTNER_CENTER_API_TOKEN) to a long random value, listen on 127.0.0.1, or, if a firewall or an authenticating proxy already guards the port, set `allow_unauthenticated_network = true` (HUNTER_PARTNER_CENTER_ALLOW_UNAUTHENTICATED_NETWORK)",
        );
    }
    if let Some(t) = &c.api_token
        && t.expose_secret().len() < 16
    {
        conv.problem(
            "api_token",
            "is shorter than 16 characters".into(),
            "use a long random value, e.g. `openssl rand -hex 32`",
        );
    }
    if tracing_subscriber::EnvFilter::try_new(&c.log_level).is_err() {
        conv.problem(
            "log_level",
            format!("`{}` is not a valid tracing filter", c.log_level),
            "use e.g. info, debug or partner_center_sync=debug,info",
        );
    }
    if !(1..=100).contains(&c.page_size) {
        conv.problem(
            "page_size",
            format!("{} is outside 1-100", c.page_size),
            "Partner Center serves at most 100 referrals a page; use 100",
        );
    }
    if c.retry_max_attempts == 0 {
        conv.problem(
            "retry_max_attempts",
            "must be at least 1".into(),
            "use e.g. 6",
        );
    }
    for (key, d) in [
        ("http_connect_timeout", c.http_connect_timeout),
        ("http_timeout", c.http_timeout),
        ("run_deadline", c.run_deadline),
        ("full_reconcile_every", c.full_reconcile_every),
    ] {
        if d.is_zero() {
            conv.problem(
                key,
                "must be greater than zero".into(),
                "use a positive duration such as 60 or 10min",
            );
        }
    }
    if c.scope.split_whitespace().count() != 1 {
        conv.problem("scope", "must be exactly one resource scope".into(), "use https://api.partner.microsoft.com/user_impersonation (offline_access openid profile are added)");
    }
}

/// Validates with the same parser tokio-cron-scheduler uses, seconds required.
pub(crate) fn parse_cron(expr: &str) -> Result<croner::Cron, String> {
    if expr.split_whitespace().count() != 6 {
        return Err(format!(
            "has {} fields, expected 6",
            expr.split_whitespace().count()
        ));
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .build()
        .parse(expr)
        .map_err(|e| e.to_string())
}

/// An identifier PostgreSQL takes unquoted and keeps as written, so the name in the config,
/// in `search_path` and in the catalog is the same; `pg_` names are reserved for the system.
fn valid_schema_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
        && !name.starts_with("pg_")
}

fn valid_tenant(t: &str) -> bool {
    if t == "organizations" || t == "common" {
        return true;
    }
    let guid = t.len() == 36
        && t.chars().enumerate().all(|(i, ch)| match i {
            8 | 13 | 18 | 23 => ch == '-',
            _ => ch.is_ascii_hexdigit(),
        });
    let domain = t.contains('.')
        && t.split('.')
            .all(|l| !l.is_empty() && l.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-'));
    guid || domain
}

/// http is allowed only towards this machine, so the emulator and tests work while a
/// production token can never cross the network in clear text.
pub(super) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}
