//! Loopback emulator of the Microsoft identity platform (device code and refresh grants) and of
//! the Partner Center Referrals API, for the project's tests, its demo and its benchmarks.
//!
//! It follows `shared/reference/identity.md` and `shared/reference/partner-center-api.md`: where
//! the real services are odd, the emulator is odd the same way, so a client that is correct here is
//! correct against Microsoft. Tests start it in-process with [`Emulator::start`]; the
//! `pc-emulator` binary runs it by hand.
//!
//! Module map:
//! - `config`: [`EmulatorConfig`], the knobs of one emulator instance.
//! - `emulator`: [`Emulator`], the handle tests hold: start, steer, inspect, stop.
//! - `server`: the axum router, the request middleware and the listener that can reset connections.
//! - `tls`: the optional https listener and the certificate it makes at start.
//! - `state`: the shared state every handler sees.
//! - `identity`: device codes and tokens (the state machine, no HTTP).
//! - `identity_http`: the `/{tenant}/oauth2/v2.0/...` and discovery endpoints.
//! - `aad_error`: Entra-shaped error bodies.
//! - `dataset`: deterministic, realistic referral generation.
//! - `rng`: the seeded SplitMix64 stream behind datasets, mutations and faults.
//! - `timefmt`: 100 ns ticks and Microsoft's 0-7 fractional digit timestamps.
//! - `store`: the referral table, its order indexes and mutations.
//! - `activity`: a tenant living in the present: re-dated New referrals and rounds of changes.
//! - `odata`: `$filter`, `$orderby`, `$top` and `$skiptoken` parsing.
//! - `referrals`: the `/v1.0/engagements/referrals` endpoints.
//! - `faults`: the fault spec grammar and the fault engine.
//! - `redirect`: switches that answer a service with a 3xx to another address.
//! - `stats`: request and token statistics.
//! - `control`: the `/_emulator/` control endpoints and the `/devicelogin` page.

mod aad_error;
mod activity;
mod config;
mod control;
mod dataset;
mod emulator;
mod faults;
mod identity;
mod identity_http;
mod odata;
mod redirect;
mod referrals;
mod rng;
mod server;
mod state;
mod stats;
mod store;
mod timefmt;
mod tls;

pub use activity::{Activity, ActivityChange, ChangeKind};
pub use config::EmulatorConfig;
pub use emulator::{Emulator, MAX_REFERRALS};
pub use faults::{FaultRule, FaultSpec, FaultSpecError, Trigger};
pub use identity::TokenResponse;
pub use redirect::{Redirect, Service};
pub use stats::{PathKind, Stats};
