//! The optional https listener: a throwaway CA and server certificate made at start, and a
//! listener that completes TLS handshakes off the accept loop.
//!
//! MSAL (Python, .NET, Node) refuses authorities that are not https, so clients other than the
//! daemon need this to sign in against the emulator. The certificate chains to a CA of its own
//! rather than being self-signed as a leaf: OpenSSL, rustls and the platform stores then all
//! accept the one PEM file a client is given as its trust anchor.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::server::TlsStream;

use crate::server::{KillSwitch, KillableListener, KillableStream};

/// The names the server certificate is valid for: the emulator binds 127.0.0.1 only.
const SERVER_NAMES: [&str; 2] = ["127.0.0.1", "localhost"];

/// A client that connects and never finishes its handshake is dropped after this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections past their handshake that the server has not taken yet; when full, later ones
/// wait their turn.
const READY_QUEUE: usize = 64;

/// What one run serves https with; the keys live only in memory.
pub(crate) struct Tls {
    /// The CA certificate clients must trust, PEM-encoded.
    pub ca_pem: String,
    pub acceptor: TlsAcceptor,
}

impl Tls {
    /// A fresh CA and a server certificate it signed for [`SERVER_NAMES`].
    pub fn generate() -> anyhow::Result<Tls> {
        let mut ca_params = CertificateParams::default();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "pc-emulator throwaway CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().context("could not generate the CA key")?;
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key)
            .context("could not sign the CA certificate")?;

        let mut server_params = CertificateParams::new(SERVER_NAMES.map(String::from).to_vec())
            .context("could not use the server names")?;
        server_params
            .distinguished_name
            .push(DnType::CommonName, "pc-emulator");
        server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server_params.use_authority_key_identifier_extension = true;
        let server_key = KeyPair::generate().context("could not generate the server key")?;
        let server_cert = server_params
            .signed_by(&server_key, &ca)
            .context("could not sign the server certificate")?;

        // An explicit provider: whichever rustls backends other crates switch on, this one works.
        let config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .context("no TLS protocol version available")?
            .with_no_client_auth()
            .with_single_cert(
                vec![server_cert.der().clone(), ca.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
            )
            .context("could not build the TLS configuration")?;
        Ok(Tls {
            ca_pem: ca.pem(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }
}

/// Serves connections whose TLS handshake has finished. Handshakes run in tasks of their own,
/// so a client that stalls in one never holds up the others.
pub(crate) struct TlsListener {
    addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<KillableStream>, SocketAddr)>,
    accepting: JoinHandle<()>,
}

impl TlsListener {
    /// Takes over `tcp`, bound to `addr`.
    pub fn new(mut tcp: KillableListener, addr: SocketAddr, acceptor: TlsAcceptor) -> TlsListener {
        let (done, ready) = mpsc::channel(READY_QUEUE);
        let accepting = tokio::spawn(async move {
            loop {
                let (stream, peer) = tcp.accept().await;
                let (acceptor, done) = (acceptor.clone(), done.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = done.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::info!(
                            %peer,
                            error = %e,
                            "A TLS handshake failed; a client must trust the emulator's CA certificate (ca_cert)."
                        ),
                        Err(_) => tracing::info!(%peer, "A TLS handshake timed out."),
                    }
                });
            }
        });
        TlsListener {
            addr,
            ready,
            accepting,
        }
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<KillableStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accepting task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for KillSwitch {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        stream.io().get_ref().0.switch()
    }
}
