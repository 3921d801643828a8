//! What every response goes through, from tower-http: the access log, the request
//! timeout, compression, the headers no API answer may lack, and JSON bodies for the
//! errors the router answers by itself (404, 405, a timeout, an extractor's rejection).

use std::time::Duration;

use axum::body::Body;
use axum::http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderValue, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use super::error::ApiError;

/// The longest a handler may take to answer. Counted up to the response's head only: a
/// CSV export that streams for minutes is not cut, since its rows go out after the head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Smaller bodies are not worth the CPU; a page of referrals is tens of KB.
const COMPRESS_ABOVE: u16 = 1024;

/// The most of an error body (an extractor's plain-text rejection) carried into JSON.
const MAX_ERROR_TEXT: usize = 2048;

/// Wraps the router, outermost first: the access log sees every answer (a refused host
/// too), compression and the headers apply to error bodies as well.
pub(crate) fn wrap<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .layer(timeout())
        .layer(axum::middleware::map_response(json_errors))
        .layer(no_store())
        .layer(nosniff())
        .layer(compression())
        // One DEBUG line per request with method, path (never the query, which may carry
        // search text), status and duration. Failures are not logged again here: a 500
        // is logged by `ApiError` with its cause.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(log_response)
                .on_body_chunk(())
                .on_eos(())
                .on_failure(()),
        )
}

fn request_span(request: &Request<Body>) -> tracing::Span {
    tracing::debug_span!(
        "http_request",
        method = %request.method(),
        path = %request.uri().path(),
    )
}

fn log_response(response: &Response, latency: Duration, _: &tracing::Span) {
    tracing::debug!(
        event = "http_request",
        status = response.status().as_u16(),
        duration_ms = latency.as_secs_f64() * 1000.0,
        "Answered an HTTP request."
    );
}

/// A handler still busy after [`REQUEST_TIMEOUT`] is answered 503 (with a JSON body, by
/// [`json_errors`]).
fn timeout() -> TimeoutLayer {
    TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, REQUEST_TIMEOUT)
}

/// gzip for clients that ask, on bodies worth it, streamed ones (the CSV export) included.
fn compression() -> CompressionLayer<impl Predicate> {
    CompressionLayer::new().compress_when(
        SizeAbove::new(COMPRESS_ABOVE)
            .and(NotForContentType::IMAGES)
            .and(NotForContentType::const_new("text/event-stream")),
    )
}

/// API answers are neither sniffed as another type nor kept in a cache (a proxy's or
/// the browser's) where the next user of the machine could read referrals. The UI's
/// assets set their own `Cache-Control`, which is kept.
fn nosniff() -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(
        X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    )
}

fn no_store() -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(CACHE_CONTROL, HeaderValue::from_static("no-store"))
}

/// The router's answer for a path no route has.
pub(crate) async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!(
        "No endpoint at `{}`; /api/openapi.json lists them.",
        uri.path()
    ))
}

/// Gives every error a JSON body `{"success": false, "error": …}` like `ApiError`'s:
/// the router's own 405, the timeout's 503 and extractors' plain-text rejections
/// arrive without one.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_ERROR_TEXT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let allow = parts.headers.get(ALLOW).cloned();
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => format!(
            "This endpoint does not accept that method; it accepts {}.",
            allow
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or("other methods")
        ),
        StatusCode::SERVICE_UNAVAILABLE if text.is_empty() => format!(
            "The request took longer than {} s and was stopped; try again, or narrow the filters.",
            REQUEST_TIMEOUT.as_secs()
        ),
        _ if !text.is_empty() => text,
        _ => status
            .canonical_reason()
            .unwrap_or("Request failed")
            .to_owned(),
    };
    let mut response = (
        status,
        Json(serde_json::json!({"success": false, "error": error})),
    )
        .into_response();
    if let Some(allow) = allow {
        response.headers_mut().insert(ALLOW, allow);
    }
    response
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::body::Bytes;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    async fn call(router: Router, path: &str) -> (StatusCode, Bytes) {
        let response = router
            .oneshot(
                Request::builder()
                    .uri(path)
                    .body(Body::empty())
                    .expect("a request"),
            )
            .await
            .expect("infallible");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("the whole body");
        (status, body)
    }

    /// Paused time: the 30 s pass at once.
    #[tokio::test(start_paused = true)]
    async fn a_slow_handler_times_out_but_a_long_stream_does_not() {
        let router = wrap(
            Router::new()
                .route(
                    "/slow",
                    get(|| async {
                        tokio::time::sleep(REQUEST_TIMEOUT * 2).await;
                        "late"
                    }),
                )
                .route(
                    "/stream",
                    get(|| async {
                        let chunks = futures::stream::unfold(0, |n| async move {
                            (n < 3).then_some(())?;
                            tokio::time::sleep(REQUEST_TIMEOUT).await;
                            Some((
                                Ok::<_, Infallible>(Bytes::from(format!("row {n}\n"))),
                                n + 1,
                            ))
                        });
                        Body::from_stream(chunks)
                    }),
                ),
        );
        let (status, body) = call(router.clone(), "/slow").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let error: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert!(
            error["error"].as_str().expect("error").contains("30 s"),
            "{error}"
        );
        let (status, body) = call(router, "/stream").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "row 0\nrow 1\nrow 2\n", "90 s of streaming, not cut");
    }
}
