//! One Partner Center request: bearer token, correlation ids, retries within the attempt
//! limit and the run's budget, one token refresh on 401, and a log line per answer.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, HeaderMap, RETRY_AFTER};
use url::Url;

use super::{ErrorBody, PcError, RetryBudget, RetryPolicy, retry};
use crate::auth::{AccessToken, AuthError, SignInRequired, TokenProvider};
use crate::config::Config;
use crate::metrics::Metrics;

/// One successful response.
pub(super) struct Fetched<T> {
    pub body: T,
    pub server_date: Option<DateTime<Utc>>,
}

/// Why an attempt failed, and whether it may be retried.
enum AttemptFailure {
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// A 401 answered by a token refresh: retried at once, outside the attempt limit and
    /// the budget, and at most once per request (`refreshed`).
    Refreshed,
    Fatal(PcError),
}

#[derive(Clone)]
pub(crate) struct PartnerCenterClient {
    http: reqwest::Client,
    /// `api_url` without its trailing slash.
    pub(super) base: String,
    tokens: TokenProvider,
    metrics: Metrics,
    policy: RetryPolicy,
}

impl PartnerCenterClient {
    pub(crate) fn new(
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

    async fn token(&self) -> Result<AccessToken, AttemptFailure> {
        self.tokens.access_token().await.map_err(auth_failure)
    }

    /// GET with the retry rules; `parse` turns a 200 body into `T`, and its failure is
    /// retried like a transport fault (a truncated or garbled page is transient).
    pub(super) async fn send<T>(
        &self,
        url: &Url,
        budget: &RetryBudget,
        parse: impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<Fetched<T>, PcError> {
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
                Err(AttemptFailure::Fatal(e)) => return Err(e),
                Err(AttemptFailure::Refreshed) => {
                    attempt -= 1;
                    continue;
                }
                Err(AttemptFailure::Transient {
                    reason,
                    retry_after,
                }) => (reason, retry_after),
            };
            if attempt >= self.policy.max_attempts {
                return Err(PcError::RetriesExhausted {
                    path,
                    attempts: attempt,
                    last: reason,
                });
            }
            if !budget.take() {
                return Err(PcError::BudgetExhausted {
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
    ) -> Result<Fetched<T>, AttemptFailure> {
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
            "Partner Center answered GET {path} with {} in {} ms.",
            status.as_u16(),
            elapsed_ms(started)
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
                Err(e) => Err(AttemptFailure::Transient {
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
            _ if status.is_redirection() => Err(AttemptFailure::Fatal(PcError::Redirected {
                path: path.to_owned(),
                status: status.as_u16(),
                location: crate::outbound::location(&headers),
            })),
            StatusCode::UNAUTHORIZED if !*refreshed => {
                *refreshed = true;
                let fresh = self
                    .tokens
                    .refresh_after_rejection(&bearer)
                    .await
                    .map_err(auth_failure)?;
                *token = Some(fresh);
                tracing::info!(event = "token_refreshed_after_401", path, request_id = %request_id, "Partner Center rejected the access token; refreshed it and retrying once.");
                Err(AttemptFailure::Refreshed)
            }
            StatusCode::UNAUTHORIZED => Err(AttemptFailure::Fatal(
                SignInRequired::new(format!(
                    "Partner Center rejected a freshly refreshed token (401{code}: {})",
                    details.message
                ))
                .into(),
            )),
            StatusCode::FORBIDDEN => Err(AttemptFailure::Fatal(PcError::Forbidden {
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
                Err(AttemptFailure::Transient {
                    reason: format!(
                        "{status}{code} {}, request id {request_id}",
                        details.message
                    ),
                    retry_after,
                })
            }
            _ => Err(AttemptFailure::Fatal(PcError::Rejected {
                path: path.to_owned(),
                status: status.as_u16(),
                code,
                message: details.message,
                request_id,
            })),
        }
    }
}

fn auth_failure(e: AuthError) -> AttemptFailure {
    match e {
        AuthError::SignInRequired(required) => AttemptFailure::Fatal(required.into()),
        AuthError::Transient { message } => AttemptFailure::Transient {
            reason: format!("identity service: {message}"),
            retry_after: None,
        },
        other => AttemptFailure::Fatal(PcError::Auth(other)),
    }
}

fn transport_failure(e: &reqwest::Error) -> AttemptFailure {
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
    AttemptFailure::Transient {
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
