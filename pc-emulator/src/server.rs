//! The axum router, the middleware every request passes (statistics, `Request-ID`, logging) and
//! a listener whose connections a handler can reset without writing a response.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::connect_info::Connected;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::{IncomingStream, Listener};
use axum::{Json, Router};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

use crate::state::Shared;
use crate::stats::PathKind;
use crate::{control, identity_http, redirect, referrals};

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/{tenant}/oauth2/v2.0/devicecode",
            post(identity_http::device_code),
        )
        .route("/{tenant}/oauth2/v2.0/token", post(identity_http::token))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(identity_http::openid_configuration),
        )
        .route(
            "/common/discovery/instance",
            get(identity_http::instance_discovery),
        )
        .route("/v1.0/engagements/referrals", get(referrals::list))
        .route("/v1.0/engagements/referrals/{id}", get(referrals::get_one))
        .merge(control::router())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            redirect::redirect,
        ))
        .layer(middleware::from_fn_with_state(shared.clone(), observe))
        .with_state(shared)
}

/// Unknown paths, including the documented nextLink's `/v1.0/referrals`: a client must repair
/// that link, so it must not work here.
async fn not_found(request: Request) -> Response {
    let path = request.uri().path().to_string();
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": { "code": "itemNotFound", "message": format!("No resource matches the path '{path}'.") } })),
    )
        .into_response()
}

/// Marks a response that must not be written: the connection is reset instead.
#[derive(Clone, Copy)]
pub(crate) struct ConnectionReset;

fn classify(path: &str) -> PathKind {
    if path == "/v1.0/engagements/referrals" {
        PathKind::ReferralList
    } else if path.starts_with("/v1.0/engagements/referrals/") {
        PathKind::ReferralGet
    } else if path.ends_with("/oauth2/v2.0/devicecode") {
        PathKind::DeviceCode
    } else if path.ends_with("/oauth2/v2.0/token") {
        PathKind::Token
    } else if path.ends_with("/.well-known/openid-configuration") {
        PathKind::OpenidConfiguration
    } else if path == "/common/discovery/instance" {
        PathKind::InstanceDiscovery
    } else if path.starts_with("/devicelogin") {
        PathKind::DeviceLogin
    } else if path.starts_with("/_emulator") {
        PathKind::Control
    } else {
        PathKind::Other
    }
}

/// Counts, labels and logs every request. `Request-ID` is what the API returns for support
/// cases; `client-request-id` is echoed as both services do.
async fn observe(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let kind = classify(request.uri().path());
    let method: Method = request.method().clone();
    let path = request.uri().path().to_string();
    let client_request_id = request.headers().get("client-request-id").cloned();
    let started = Instant::now();
    let mut response = next.run(request).await;
    let reset = response.extensions().get::<ConnectionReset>().is_some();
    let status = if reset { 0 } else { response.status().as_u16() };
    shared.stats.record_request(kind, status);
    let headers = response.headers_mut();
    if let Ok(id) = HeaderValue::from_str(&Uuid::new_v4().to_string()) {
        headers.insert(HeaderName::from_static("request-id"), id);
    }
    if let Some(id) = client_request_id {
        headers.insert(HeaderName::from_static("client-request-id"), id);
    }
    tracing::info!(
        %method,
        path,
        status,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "Answered a request."
    );
    response
}

/// Per-connection switch a handler flips to have the connection dropped unanswered.
#[derive(Clone, Default)]
pub(crate) struct KillSwitch(Arc<AtomicBool>);

impl KillSwitch {
    pub fn trip(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn tripped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A TCP listener whose streams fail all I/O once their [`KillSwitch`] trips; with zero linger
/// the socket then closes with a RST, so the client sees a reset, never a response.
pub(crate) struct KillableListener(pub TcpListener);

pub(crate) struct KillableStream {
    inner: TcpStream,
    switch: KillSwitch,
}

impl KillableStream {
    pub fn switch(&self) -> KillSwitch {
        self.switch.clone()
    }

    fn check(&self) -> io::Result<()> {
        if self.switch.tripped() {
            // Best effort: without zero linger the close is a FIN, still not a response.
            let _ = self.inner.set_zero_linger();
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "fault injection: reset",
            ));
        }
        Ok(())
    }
}

impl Listener for KillableListener {
    type Io = KillableStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = Listener::accept(&mut self.0).await;
        let _ = stream.set_nodelay(true);
        (
            KillableStream {
                inner: stream,
                switch: KillSwitch::default(),
            },
            addr,
        )
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

impl Connected<IncomingStream<'_, KillableListener>> for KillSwitch {
    fn connect_info(stream: IncomingStream<'_, KillableListener>) -> Self {
        stream.io().switch()
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(e) = this.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Err(e) = this.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Err(e) = this.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(e) = this.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
