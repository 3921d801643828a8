//! [`Emulator`]: start one on 127.0.0.1, steer it, read its truth and statistics, stop it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::activity::ActivityChange;
use crate::config::EmulatorConfig;
use crate::faults::{FaultEngine, FaultSpec};
use crate::identity::TokenResponse;
use crate::redirect::Redirect;
use crate::server::{self, KillSwitch, KillableListener};
use crate::state::Shared;
use crate::stats::Stats;
use crate::store::ReferralStore;
use crate::timefmt;
use crate::tls::{Tls, TlsListener};

/// The largest dataset [`Emulator::start`] accepts.
pub const MAX_REFERRALS: usize = 1_000_000;

/// A running emulator. Dropping it (or [`Emulator::shutdown`]) stops the server.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    ca_pem: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// The timer of [`EmulatorConfig::activity`], aborted when the emulator stops.
    activity: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Generates the dataset, binds 127.0.0.1:`config.port` and serves until dropped.
    pub async fn start(config: EmulatorConfig) -> anyhow::Result<Emulator> {
        anyhow::ensure!(
            config.referrals <= MAX_REFERRALS,
            "referrals: {} is more than the {MAX_REFERRALS} the emulator supports",
            config.referrals
        );
        let listener = TcpListener::bind(("127.0.0.1", config.port))
            .await
            .with_context(|| format!("could not bind 127.0.0.1:{}", config.port))?;
        let addr = listener
            .local_addr()
            .context("could not read the bound address")?;
        let (seed, size, poison) = (config.seed, config.referrals, config.poison_referrals);
        let store = tokio::task::spawn_blocking(move || {
            ReferralStore::build(seed, size).map(|mut store| {
                if poison {
                    store.poison();
                }
                store
            })
        })
        .await
        .context("dataset generation did not finish")??;
        let tls = config.tls.then(Tls::generate).transpose()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let activity = config.activity;
        let shared = Arc::new(Shared::new(config, format!("{scheme}://{addr}"), store));
        if activity.is_some() {
            shared.go_live();
        }
        let activity = activity
            .and_then(|a| a.every)
            .map(|every| spawn_activity(shared.clone(), every));
        let app = server::router(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let listener = KillableListener(listener);
        let (task, ca_pem) = match tls {
            None => (spawn_server(listener, app, stopped), None),
            Some(Tls { ca_pem, acceptor }) => {
                let listener = TlsListener::new(listener, addr, acceptor);
                (spawn_server(listener, app, stopped), Some(ca_pem))
            }
        };
        Ok(Emulator {
            shared,
            addr,
            ca_pem,
            stop: Some(stop),
            task: Some(task),
            activity,
        })
    }

    /// `http://127.0.0.1:PORT`, or `https://` with [`EmulatorConfig::tls`].
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// With [`EmulatorConfig::tls`], the PEM of the CA that signed the server's certificate:
    /// clients must trust it (`REQUESTS_CA_BUNDLE`, `NODE_EXTRA_CA_CERTS`, ...). It is made
    /// afresh at every start and is good for `127.0.0.1` and `localhost`.
    pub fn ca_certificate_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The daemon's `authority_url`: clients call `{authority_url}/{tenant}/oauth2/v2.0/devicecode`
    /// and `/token`, and `{authority_url}/{tenant}/v2.0/.well-known/openid-configuration`.
    pub fn authority_url(&self) -> String {
        self.base_url()
    }

    /// The daemon's `api_url`: referrals are at `{api_url}/engagements/referrals`.
    pub fn api_url(&self) -> String {
        format!("{}/v1.0", self.shared.base_url)
    }

    /// The partner tenant's id (from the seed).
    pub fn tenant_id(&self) -> String {
        self.shared.identity().tenant_id.clone()
    }

    /// The registered app's client id (from the seed).
    pub fn client_id(&self) -> String {
        self.shared.identity().client_id.clone()
    }

    /// Approves a pending device code as the user would; false if unknown, decided or expired.
    pub fn approve(&self, user_code: &str) -> bool {
        self.shared
            .identity()
            .set_user_decision(user_code, true, Instant::now())
    }

    /// Approves every pending device code; returns how many.
    pub fn approve_all(&self) -> usize {
        self.shared.identity().approve_all(Instant::now())
    }

    /// Declines a pending device code: the next poll gets `authorization_declined`.
    pub fn decline(&self, user_code: &str) -> bool {
        self.shared
            .identity()
            .set_user_decision(user_code, false, Instant::now())
    }

    /// User codes waiting for a decision, sorted.
    pub fn pending_user_codes(&self) -> Vec<String> {
        self.shared.identity().pending_user_codes(Instant::now())
    }

    /// Revokes every refresh token issued so far (AADSTS50173 on use), as "revoke sessions" does.
    pub fn revoke_refresh_tokens(&self) {
        self.shared.identity().revoke_refresh_tokens();
    }

    /// Expires every access token issued so far: the API answers 401 to them.
    pub fn expire_access_tokens(&self) {
        self.shared.identity().expire_access_tokens();
    }

    /// A token response as if a device-code sign-in had just completed (full scopes,
    /// `client_info`), for token cache fixtures.
    pub fn issue_tokens(&self) -> TokenResponse {
        let tokens = self.shared.identity().issue_full(Instant::now());
        self.shared.stats.update(|s| s.tokens_issued += 1);
        tokens
    }

    /// Updates `k` referrals (open ones first): `updatedDateTime` now, new eTag, status moved
    /// along the documented transitions. Returns their ids.
    pub fn update_referrals(&self, k: usize) -> Vec<String> {
        self.shared.store_mut().update(k, timefmt::now_ticks())
    }

    /// Adds `k` referrals created now. Returns their ids.
    pub fn add_referrals(&self, k: usize) -> Vec<String> {
        self.shared.store_mut().add(k, timefmt::now_ticks())
    }

    /// Closes `k` open referrals (won, lost, declined or expired). Returns their ids.
    pub fn close_referrals(&self, k: usize) -> Vec<String> {
        self.shared.store_mut().close(k, timefmt::now_ticks())
    }

    /// One round of [`EmulatorConfig::activity`] now, besides the timed ones: New referrals
    /// past their expiry close as expired, then `changes` changes are drawn. Returns what
    /// changed, in order; `None` when the emulator was started without an activity.
    pub fn activity_round(&self) -> Option<Vec<ActivityChange>> {
        self.shared.activity_round()
    }

    /// Hides `k` referrals from the API (listing and get), timestamps untouched. Returns their ids.
    pub fn hide_referrals(&self, k: usize) -> Vec<String> {
        self.shared.store_mut().hide(k)
    }

    /// Makes every hidden referral visible again, unchanged. Returns their ids.
    pub fn unhide_all(&self) -> Vec<String> {
        self.shared.store_mut().unhide_all()
    }

    /// Every visible referral, sorted by id, exactly as the API serves it.
    pub fn truth(&self) -> Vec<serde_json::Value> {
        self.shared
            .store()
            .truth()
            .iter()
            .filter_map(|json| serde_json::from_str(json).ok())
            .collect()
    }

    /// How many referrals exist, hidden ones included.
    pub fn referral_count(&self) -> usize {
        self.shared.store().len()
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> Stats {
        self.shared.stats.snapshot()
    }

    /// Replaces the faults; counters and the probability stream start afresh.
    pub fn set_faults(&self, faults: FaultSpec) {
        self.shared
            .replace_faults(FaultEngine::new(faults, self.shared.config.seed));
    }

    /// Replaces the redirect switches: every request to a listed service is answered with that
    /// redirect instead; an empty list answers normally again.
    pub fn set_redirects(&self, redirects: Vec<Redirect>) {
        *self.shared.redirects() = redirects;
    }

    /// Stops accepting, lets in-flight requests finish (at most 5 s), then returns.
    pub async fn shutdown(mut self) {
        if let Some(activity) = self.activity.take() {
            activity.abort();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

/// Serves `app` on `listener` until `stopped` fires.
fn spawn_server<L>(listener: L, app: Router, stopped: oneshot::Receiver<()>) -> JoinHandle<()>
where
    L: Listener<Addr = SocketAddr>,
    KillSwitch: for<'a> Connected<IncomingStream<'a, L>>,
{
    let app = app.into_make_service_with_connect_info::<KillSwitch>();
    tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "The emulator's server stopped with an error.");
        }
    })
}

/// Runs a round of activity every `every`, logging what changed.
fn spawn_activity(shared: Arc<Shared>, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            ticks.tick().await;
            let changes = shared.activity_round().unwrap_or_default();
            for change in &changes {
                tracing::info!(id = %change.id, change = %change.kind, "Activity changed a referral.");
            }
        }
    })
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(activity) = self.activity.take() {
            activity.abort();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
