//! Who may talk to the daemon from a browser: the `Host` every request names, and where
//! a state-changing request comes from.
//!
//! With no `api_token` (the default on loopback) anything that can reach the port can
//! use the API, including a web page the operator happens to open. Two attacks follow,
//! and each check here closes one:
//! - DNS rebinding: a foreign name that resolves to 127.0.0.1 makes the browser treat the
//!   API as that page's own origin, so it can read every referral. The browser still sends
//!   the foreign name in `Host`; only loopback names, the listen address and `public_hosts`
//!   (the names a reverse proxy forwards) are answered, anything else is a 421.
//! - Cross-site requests: a page may send a "simple" POST to any origin without asking.
//!   A state-changing request whose `Origin` is another origin, or whose `Sec-Fetch-Site`
//!   is not `same-origin`/`none`, is a 403; the trigger also refuses any body that is not
//!   JSON (`ops.rs`), which a simple request cannot send.

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header, uri::Authority};
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use super::error::ApiError;
use crate::config::Config;

/// A request for a host this daemon does not answer for: 421 Misdirected Request.
pub(crate) async fn check_host(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let config = state.config.borrow().clone();
    let host = request_host(&request);
    match host.as_deref().map(|h| host_allowed(&config, h)) {
        Some(true) => Ok(next.run(request).await),
        Some(false) | None => Err(ApiError::Misdirected(format!(
            "This daemon does not answer for the host {}. Use a loopback name or the listen address; \
                 behind a reverse proxy, add the name to `public_hosts` (HUNTER_PARTNER_CENTER_PUBLIC_HOSTS).",
            host.map_or_else(|| "(none given)".to_owned(), |h| format!("`{h}`"))
        ))),
    }
}

/// Refuses a state-changing request that a browser says comes from another site.
pub(crate) async fn check_origin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return Ok(next.run(request).await);
    }
    let config = state.config.borrow().clone();
    let headers = request.headers();
    if let Some(site) = headers.get("sec-fetch-site")
        && !matches!(site.as_bytes(), b"same-origin" | b"none")
    {
        return Err(ApiError::Forbidden(
            "Cross-site requests may not change anything (Sec-Fetch-Site is not same-origin)."
                .to_owned(),
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let own = request_host(&request);
        if !origin_allowed(&config, origin.as_bytes(), own.as_deref()) {
            return Err(ApiError::Forbidden(
                "Cross-origin requests may not change anything: `Origin` is not this daemon. \
                 Behind a reverse proxy, add its name to `public_hosts` (HUNTER_PARTNER_CENTER_PUBLIC_HOSTS)."
                    .to_owned(),
            ));
        }
    }
    Ok(next.run(request).await)
}

/// `host[:port]` as the client sent it: the HTTP/2 `:authority`, else `Host`.
fn request_host(request: &Request) -> Option<String> {
    if let Some(authority) = request.uri().authority() {
        return Some(authority.as_str().to_owned());
    }
    header_text(request.headers(), header::HOST)
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The host part of `host[:port]`, normalised the way `public_hosts` is (lower case,
/// IDNA, IPv6 in brackets), or `None` when it is not a host at all.
fn host_part(authority: &str) -> Option<String> {
    let authority: Authority = authority.parse().ok()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let host = url::Host::parse(authority.host()).ok()?;
    Some(host.to_string())
}

/// Loopback names, the listen address and `public_hosts`, on any port: the port says
/// nothing about which site a browser thinks it is talking to.
fn host_allowed(config: &Config, authority: &str) -> bool {
    let Some(host) = host_part(authority) else {
        return false;
    };
    if host == "localhost" || config.public_hosts.contains(&host) {
        return true;
    }
    let ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>();
    match ip {
        Ok(ip) => ip.to_canonical().is_loopback() || ip == config.listen.ip(),
        Err(_) => false,
    }
}

/// Same origin as the request (`Origin`'s `host:port` is the `Host` it was sent to), or
/// a public host behind the proxy, which may rewrite `Host` on its way in.
fn origin_allowed(config: &Config, origin: &[u8], own: Option<&str>) -> bool {
    let Some(authority) = std::str::from_utf8(origin).ok().and_then(|o| {
        o.strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))
    }) else {
        // `null` (a sandboxed frame, a file) or anything else: not this daemon.
        return false;
    };
    let same = own.is_some_and(|own| own.eq_ignore_ascii_case(authority));
    let public = host_part(authority).is_some_and(|h| config.public_hosts.contains(&h));
    (same && host_allowed(config, authority)) || public
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config {
            listen: "192.0.2.7:8000".parse().expect("an address"),
            public_hosts: vec!["sync.example.com".to_owned()],
            ..Config::default()
        }
    }

    #[test]
    fn loopback_names_the_listen_address_and_public_hosts_are_answered() {
        let c = config();
        for ok in [
            "localhost",
            "LOCALHOST:8000",
            "127.0.0.1",
            "127.0.0.1:1234",
            "[::1]:8000",
            "192.0.2.7:8000",
            "sync.example.com",
            "Sync.Example.com:443",
        ] {
            assert!(host_allowed(&c, ok), "{ok}");
        }
        for bad in [
            "",
            "evil.example",
            "evil.example:8000",
            "localhost.evil.example",
            "192.0.2.8:8000",
            "user@localhost",
            "sync.example.com.evil.example",
        ] {
            assert!(!host_allowed(&c, bad), "{bad}");
        }
    }

    #[test]
    fn only_the_same_origin_or_a_public_host_may_change_state() {
        let c = config();
        let own = Some("127.0.0.1:8000");
        assert!(origin_allowed(&c, b"http://127.0.0.1:8000", own));
        assert!(origin_allowed(&c, b"https://sync.example.com", own));
        for bad in [
            &b"http://127.0.0.1:3000"[..],
            b"http://localhost:8000",
            b"https://evil.example",
            b"null",
            b"127.0.0.1:8000",
        ] {
            assert!(
                !origin_allowed(&c, bad, own),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
