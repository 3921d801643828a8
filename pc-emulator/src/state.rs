//! The state every handler shares. Locks are std locks held only for in-memory work, never
//! across an `.await`, so test code can steer the emulator while requests are in flight.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::activity::{ActivityChange, ActivityEngine};
use crate::config::EmulatorConfig;
use crate::faults::FaultEngine;
use crate::identity::Identity;
use crate::redirect::Redirect;
use crate::stats::StatsCollector;
use crate::store::ReferralStore;
use crate::timefmt;

pub(crate) struct Shared {
    /// `http://127.0.0.1:PORT` (`https://` with TLS), known once the listener is bound.
    pub base_url: String,
    pub config: EmulatorConfig,
    identity: Mutex<Identity>,
    store: RwLock<ReferralStore>,
    faults: Mutex<FaultEngine>,
    redirects: Mutex<Vec<Redirect>>,
    activity: Mutex<ActivityEngine>,
    pub stats: StatsCollector,
}

impl Shared {
    pub fn new(config: EmulatorConfig, base_url: String, store: ReferralStore) -> Shared {
        Shared {
            identity: Mutex::new(Identity::new(&config, &base_url)),
            faults: Mutex::new(FaultEngine::new(config.faults.clone(), config.seed)),
            store: RwLock::new(store),
            redirects: Mutex::new(Vec::new()),
            activity: Mutex::new(ActivityEngine::new(config.seed)),
            stats: StatsCollector::default(),
            base_url,
            config,
        }
    }

    /// `127.0.0.1:PORT`: the base URL without its scheme.
    pub fn host(&self) -> &str {
        self.base_url
            .split_once("://")
            .map_or(self.base_url.as_str(), |(_, host)| host)
    }

    pub fn identity(&self) -> MutexGuard<'_, Identity> {
        self.identity.lock().expect("identity lock poisoned")
    }

    pub fn store(&self) -> RwLockReadGuard<'_, ReferralStore> {
        self.store.read().expect("referral store lock poisoned")
    }

    pub fn store_mut(&self) -> RwLockWriteGuard<'_, ReferralStore> {
        self.store.write().expect("referral store lock poisoned")
    }

    pub fn faults(&self) -> MutexGuard<'_, FaultEngine> {
        self.faults.lock().expect("fault engine lock poisoned")
    }

    pub fn replace_faults(&self, engine: FaultEngine) {
        *self.faults() = engine;
    }

    /// Re-dates the New referrals as recent arrivals (at start, with an activity).
    pub fn go_live(&self) {
        let mut store = self.store_mut();
        self.activity
            .lock()
            .expect("activity lock poisoned")
            .go_live(&mut store, timefmt::now_ticks());
    }

    /// One round of activity; `None` when the emulator was started without one.
    pub fn activity_round(&self) -> Option<Vec<ActivityChange>> {
        let changes = self.config.activity?.changes;
        let mut engine = self.activity.lock().expect("activity lock poisoned");
        let mut store = self.store_mut();
        Some(engine.round(&mut store, changes, timefmt::now_ticks()))
    }

    pub fn redirects(&self) -> MutexGuard<'_, Vec<Redirect>> {
        self.redirects.lock().expect("redirect lock poisoned")
    }
}
