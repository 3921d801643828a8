//! The Partner Center Referrals API client: paging, retries, wire types.
//!
//! Every request goes through [`PartnerCenterClient::send`], which owns the retry rules of
//! the API reference (section 6): transient failures (transport, timeouts, 429, 5xx, a
//! broken 200 body) are retried with capped, jittered backoff within a per-request attempt
//! limit and a per-run [`RetryBudget`]; a 401 refreshes the token once; everything else
//! stops with Microsoft's code and message.

pub mod retry;
pub mod wire;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, HeaderMap, RETRY_AFTER};
use serde_json::value::RawValue;
use url::Url;

use crate::auth::{AccessToken, AuthError, TokenProvider};
use crate::config::Config;
use crate::metrics::Metrics;

pub use retry::{RetryBudget, RetryPolicy};
pub use wire::{ErrorBody, WirePage};

/// The collection path under the configured `api_url` (which ends in `/v1.0`).
const COLLECTION: &str = "engagements/referrals";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Sign-in required: {reason}. Run `partner-center-sync login`.")]
    SignInRequired { reason: String },
    #[error(transparent)]
    Auth(AuthError),
    #[error(
        "Partner Center refused access (403{code}): {message}. The signed-in user needs the Referrals Admin or Referrals User role in Partner Center (Account settings > User management), and the app needs admin consent for the delegated Microsoft Partner permission. Request id: {request_id}."
    )]
    Forbidden {
        code: String,
        message: String,
        request_id: String,
    },
    #[error(
        "Partner Center rejected {path} with {status}{code}: {message} (request id: {request_id})."
    )]
    Rejected {
        path: String,
        status: u16,
        code: String,
        message: String,
        request_id: String,
    },
    #[error(
        "Partner Center kept failing on {path} after {attempts} attempts; last failure: {last}. Check the service status and retry later, or raise retry_max_attempts."
    )]
    RetriesExhausted {
        path: String,
        attempts: u32,
        last: String,
    },
    #[error(
        "This run spent its whole retry budget ({budget} retries); last failure on {path}: {last}. Partner Center is unstable; the next run goes on from the last committed page, or raise retry_budget."
    )]
    BudgetExhausted {
        path: String,
        budget: u32,
        last: String,
    },
    #[error(
        "Partner Center sent the same @odata.nextLink twice ({query}); stopping so paging cannot loop forever. Report this; the next run starts again from the first page."
    )]
    RepeatedNextLink { query: String },
    #[error(
        "Partner Center sent an @odata.nextLink without a query string ({link}); refusing to restart from the first page."
    )]
    BadNextLink { link: String },
}

impl ApiError {
    /// A 400 on a filtered list: the API does not accept our `$filter`.
    pub fn is_bad_request(&self) -> bool {
        matches!(self, ApiError::Rejected { status: 400, .. })
    }
}

/// One successful response.
struct Fetched<T> {
    body: T,
    server_date: Option<DateTime<Utc>>,
}

/// Why an attempt failed, and whether it may be retried.
enum Failure {
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// A 401 answered by a token refresh: retried at once, outside the attempt limit and
    /// the budget, and at most once per request (`refreshed`).
    Refreshed,
    Fatal(ApiError),
}

#[derive(Clone)]
pub struct PartnerCenterClient {
    http: reqwest::Client,
    /// `api_url` without its trailing slash.
    base: String,
    tokens: TokenProvider,
    metrics: Metrics,
    policy: RetryPolicy,
}

impl PartnerCenterClient {
    pub fn new(
        config: &Config,
        http: reqwest::Client,
        tokens: TokenProvider,
        metrics: Metrics,
    ) -> Self {
        Self {
            http,
            base: config.api_url.as_str().trim_end_matches('/').to_owned(),
            tokens,
            metrics,
            policy: RetryPolicy::from_config(config),
        }
    }

    /// Pages of the list for `query`, to be pulled with [`ReferralPages::next_page`].
    pub fn list(&self, query: &ListQuery, budget: RetryBudget) -> ReferralPages {
        let first = format!("{}/{COLLECTION}?{}", self.base, query.to_query_string());
        ReferralPages {
            client: self.clone(),
            next: Url::parse(&first).map_err(|_| first),
            seen: HashSet::new(),
            budget,
            repaired: 0,
        }
    }

    /// One referral by id, raw.
    pub async fn get_referral(
        &self,
        id: &str,
        budget: &RetryBudget,
    ) -> Result<Box<RawValue>, ApiError> {
        let mut url = Url::parse(&format!("{}/{COLLECTION}", self.base)).map_err(|e| {
            ApiError::BadNextLink {
                link: format!("{}: {e}", self.base),
            }
        })?;
        url.path_segments_mut()
            .map_err(|()| ApiError::BadNextLink {
                link: self.base.clone(),
            })?
            .push(id);
        let fetched = self
            .send(&url, budget, |body| {
                serde_json::from_slice::<Box<RawValue>>(body).map_err(|e| e.to_string())
            })
            .await?;
        Ok(fetched.body)
    }

    async fn token(&self) -> Result<AccessToken, Failure> {
        self.tokens.access_token().await.map_err(auth_failure)
    }

    /// GET with the retry rules; `parse` turns a 200 body into `T`, and its failure is
    /// retried like a transport fault (a truncated or garbled page is transient).
    async fn send<T>(
        &self,
        url: &Url,
        budget: &RetryBudget,
        parse: impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<Fetched<T>, ApiError> {
        let path = url.path().to_owned();
        let mut attempt: u32 = 0;
        let mut refreshed = false;
        let mut token: Option<AccessToken> = None;
        loop {
            attempt += 1;
            let (reason, retry_after) = match self
                .attempt(url, &path, &mut token, &mut refreshed, &parse)
                .await
            {
                Ok(fetched) => return Ok(fetched),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Refreshed) => {
                    attempt -= 1;
                    continue;
                }
                Err(Failure::Transient {
                    reason,
                    retry_after,
                }) => (reason, retry_after),
            };
            if attempt >= self.policy.max_attempts {
                return Err(ApiError::RetriesExhausted {
                    path,
                    attempts: attempt,
                    last: reason,
                });
            }
            if !budget.take() {
                return Err(ApiError::BudgetExhausted {
                    path,
                    budget: budget.total(),
                    last: reason,
                });
            }
            self.metrics.api_retries.inc();
            let delay = self.policy.delay(attempt, retry_after);
            tracing::info!(
                event = "retrying",
                path = %path,
                attempt,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                reason = %reason,
                "Partner Center request failed; retrying after a pause."
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt<T>(
        &self,
        url: &Url,
        path: &str,
        token: &mut Option<AccessToken>,
        refreshed: &mut bool,
        parse: &impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<Fetched<T>, Failure> {
        let bearer = match token.take() {
            Some(t) => t,
            None => self.token().await?,
        };
        let correlation_id = uuid::Uuid::new_v4().to_string();
        let started = Instant::now();
        let sent = self
            .http
            .get(url.clone())
            .bearer_auth(bearer.secret())
            .header(ACCEPT, "application/json")
            .header("MS-CorrelationId", &correlation_id)
            .header("client-request-id", &correlation_id)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                self.metrics.api_request("error", started.elapsed());
                tracing::debug!(
                    event = "partner_center_request",
                    method = "GET",
                    path,
                    status = "error",
                    duration_ms = elapsed_ms(started),
                    correlation_id,
                    "Partner Center request failed before an answer."
                );
                return Err(transport_failure(&e));
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let request_id = request_id(&headers);
        let body = response.bytes().await;
        self.metrics.api_request(status.as_str(), started.elapsed());
        tracing::debug!(
            event = "partner_center_request",
            method = "GET",
            path,
            status = status.as_u16(),
            duration_ms = elapsed_ms(started),
            request_id = %request_id,
            correlation_id,
            "Partner Center answered."
        );
        let body = body.map_err(|e| transport_failure(&e))?;
        if status.is_success() {
            return match parse(&body) {
                Ok(parsed) => {
                    *token = Some(bearer);
                    let server_date = headers
                        .get(reqwest::header::DATE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(retry::parse_http_date);
                    Ok(Fetched {
                        body: parsed,
                        server_date,
                    })
                }
                Err(e) => Err(Failure::Transient {
                    reason: format!("malformed response body ({e}), request id {request_id}"),
                    retry_after: None,
                }),
            };
        }
        let details = ErrorBody::parse(&body);
        let code = details
            .code
            .as_deref()
            .map(|c| format!(" {c}"))
            .unwrap_or_default();
        match status {
            StatusCode::UNAUTHORIZED if !*refreshed => {
                *refreshed = true;
                let fresh = self
                    .tokens
                    .refresh_after_rejection(&bearer)
                    .await
                    .map_err(auth_failure)?;
                *token = Some(fresh);
                tracing::info!(event = "token_refreshed_after_401", path, request_id = %request_id, "Partner Center rejected the access token; refreshed it and retrying once.");
                Err(Failure::Refreshed)
            }
            StatusCode::UNAUTHORIZED => Err(Failure::Fatal(ApiError::SignInRequired {
                reason: format!(
                    "Partner Center rejected a freshly refreshed token (401{code}: {})",
                    details.message
                ),
            })),
            StatusCode::FORBIDDEN => Err(Failure::Fatal(ApiError::Forbidden {
                code,
                message: details.message,
                request_id,
            })),
            StatusCode::TOO_MANY_REQUESTS
            | StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => {
                let retry_after = headers
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry::parse_retry_after(v, Utc::now()));
                Err(Failure::Transient {
                    reason: format!(
                        "{status}{code} {}, request id {request_id}",
                        details.message
                    ),
                    retry_after,
                })
            }
            _ => Err(Failure::Fatal(ApiError::Rejected {
                path: path.to_owned(),
                status: status.as_u16(),
                code,
                message: details.message,
                request_id,
            })),
        }
    }
}

fn auth_failure(e: AuthError) -> Failure {
    match e {
        AuthError::SignInRequired { reason } => Failure::Fatal(ApiError::SignInRequired { reason }),
        AuthError::Transient { message } => Failure::Transient {
            reason: format!("identity service: {message}"),
            retry_after: None,
        },
        other => Failure::Fatal(ApiError::Auth(other)),
    }
}

fn transport_failure(e: &reqwest::Error) -> Failure {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "connection broke while reading the body"
    } else {
        "transport error"
    };
    // Walk the source chain: reqwest's own message hides "connection reset by peer".
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail = format!("{detail}: {s}");
        source = s.source();
    }
    Failure::Transient {
        reason: format!("{kind} ({detail})"),
        retry_after: None,
    }
}

fn request_id(headers: &HeaderMap) -> String {
    ["request-id", "x-ms-request-id", "client-request-id"]
        .iter()
        .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .unwrap_or("none")
        .to_owned()
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The OData options of a list pass.
#[derive(Clone, Debug, PartialEq)]
pub struct ListQuery {
    /// `updatedDateTime ge …` for incremental passes.
    pub updated_since: Option<DateTime<Utc>>,
    pub top: u32,
}

impl ListQuery {
    /// Always `createdDateTime asc`: it never changes, so an offset-based `$skiptoken`
    /// cannot skip a referral that is updated while we page (API reference, section 7).
    pub fn to_query_string(&self) -> String {
        let mut q = String::new();
        if let Some(since) = self.updated_since {
            let literal = format!(
                "{}.{:07}Z",
                since.format("%Y-%m-%dT%H:%M:%S"),
                since.timestamp_subsec_nanos() / 100
            );
            q.push_str("$filter=");
            q.push_str(&encode(&format!("updatedDateTime ge {literal}")));
            q.push('&');
        }
        q.push_str("$orderby=");
        q.push_str(&encode("createdDateTime asc"));
        q.push_str(&format!("&$top={}", self.top));
        q
    }
}

/// Percent-encodes all but RFC 3986 unreserved characters (spaces as %20, never `+`).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The reference's Rule for `@odata.nextLink`: keep its query string byte for byte,
/// drop scheme, host and path, and request `{api_url}/engagements/referrals?{query}`.
/// This keeps https, never sends the token to a foreign host, and repairs the documented
/// `http://…/v1.0/referrals?…` form. Returns the URL and whether anything changed.
pub fn resolve_next_link(base: &str, link: &str) -> Result<(Url, String, bool), ApiError> {
    let without_fragment = link.split('#').next().unwrap_or_default();
    let query = match without_fragment.split_once('?') {
        Some((_, q)) if !q.is_empty() => q,
        _ => {
            return Err(ApiError::BadNextLink {
                link: link.to_owned(),
            });
        }
    };
    let resolved = format!("{}/{COLLECTION}?{query}", base.trim_end_matches('/'));
    let url = Url::parse(&resolved).map_err(|_| ApiError::BadNextLink {
        link: link.to_owned(),
    })?;
    let changed = url.as_str() != link;
    Ok((url, query.to_owned(), changed))
}

/// One page of referrals, raw.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<Box<RawValue>>,
    /// The `Date` header: the server's clock, used for the watermark.
    pub server_date: Option<DateTime<Utc>>,
    pub is_last: bool,
}

/// The state of one paging pass; pages are pulled one at a time so memory stays flat.
pub struct ReferralPages {
    client: PartnerCenterClient,
    /// The next URL to request, or the unparseable first URL.
    next: Result<Url, String>,
    /// Query strings already followed: a repeat would loop forever.
    seen: HashSet<String>,
    budget: RetryBudget,
    repaired: u32,
}

impl ReferralPages {
    /// How many nextLinks had to be rewritten by the Rule.
    pub fn repaired_links(&self) -> u32 {
        self.repaired
    }

    /// The next page, or `None` after the last.
    pub async fn next_page(&mut self) -> Result<Option<Page>, ApiError> {
        let url = match &self.next {
            Ok(u) => u.clone(),
            Err(first) if first.is_empty() => return Ok(None),
            Err(first) => {
                return Err(ApiError::BadNextLink {
                    link: first.clone(),
                });
            }
        };
        let fetched = self
            .client
            .send(&url, &self.budget, |body| {
                serde_json::from_slice::<WirePage>(body).map_err(|e| e.to_string())
            })
            .await?;
        let WirePage { value, next_link } = fetched.body;
        let next_link = next_link.filter(|l| !l.trim().is_empty());
        match next_link {
            None => self.next = Err(String::new()),
            Some(link) => {
                let (next, query, changed) = resolve_next_link(&self.client.base, &link)?;
                if !self.seen.insert(query.clone()) {
                    return Err(ApiError::RepeatedNextLink { query });
                }
                if changed {
                    self.repaired += 1;
                    if self.repaired == 1 {
                        tracing::warn!(
                            event = "next_link_repaired",
                            link = %strip_query(&link),
                            resolved = %strip_query(next.as_str()),
                            "Partner Center sent an @odata.nextLink outside the configured API URL; following its query on the configured URL instead (further repairs this pass are logged at debug)."
                        );
                    } else {
                        tracing::debug!(event = "next_link_repaired", link = %strip_query(&link), "Repaired an @odata.nextLink.");
                    }
                }
                self.next = Ok(next);
            }
        }
        let is_last = self.next.is_err();
        Ok(Some(Page {
            items: value,
            server_date: fetched.server_date,
            is_last,
        }))
    }
}

/// Logs show where a link pointed, never its opaque continuation token.
fn strip_query(link: &str) -> &str {
    link.split('?').next().unwrap_or(link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_rule_repairs_the_documented_odd_form() {
        let base = "https://api.partner.microsoft.com/v1.0";
        let (url, query, changed) = resolve_next_link(
            base,
            "http://api.partner.microsoft.com/v1.0/referrals?$skiptoken=b3BhcXVlLTE%3D",
        )
        .expect("link");
        assert_eq!(
            url.as_str(),
            "https://api.partner.microsoft.com/v1.0/engagements/referrals?$skiptoken=b3BhcXVlLTE%3D"
        );
        assert_eq!(query, "$skiptoken=b3BhcXVlLTE%3D");
        assert!(changed);
        let good = "https://api.partner.microsoft.com/v1.0/engagements/referrals?$top=100&$skiptoken=x%2By";
        let (url, _, changed) = resolve_next_link(base, good).expect("link");
        assert_eq!(url.as_str(), good);
        assert!(!changed);
        let (url, _, changed) = resolve_next_link(
            "http://127.0.0.1:9/v1.0/",
            "https://evil.example/steal?$skiptoken=1",
        )
        .expect("link");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/v1.0/engagements/referrals?$skiptoken=1"
        );
        assert!(changed);
        assert!(matches!(
            resolve_next_link(base, "https://api.partner.microsoft.com/v1.0/referrals"),
            Err(ApiError::BadNextLink { .. })
        ));
    }

    #[test]
    fn list_query_orders_by_creation_and_encodes_the_filter() {
        let q = ListQuery {
            updated_since: None,
            top: 100,
        };
        assert_eq!(
            q.to_query_string(),
            "$orderby=createdDateTime%20asc&$top=100"
        );
        let since = DateTime::parse_from_rfc3339("2025-01-15T08:02:51.12Z")
            .expect("date")
            .with_timezone(&Utc);
        let q = ListQuery {
            updated_since: Some(since),
            top: 50,
        };
        assert_eq!(
            q.to_query_string(),
            "$filter=updatedDateTime%20ge%202025-01-15T08%3A02%3A51.1200000Z&$orderby=createdDateTime%20asc&$top=50"
        );
    }
}
