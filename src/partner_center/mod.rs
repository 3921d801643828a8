//! The Partner Center Referrals API client: paging, retries, wire types.
//!
//! Every request goes through `PartnerCenterClient::send`, which owns the retry rules of
//! the API reference (section 6): transient failures (transport, timeouts, 429, 5xx, a
//! broken 200 body) are retried with capped, jittered backoff within a per-request attempt
//! limit and a per-run [`RetryBudget`]; a 401 refreshes the token once; everything else
//! stops with Microsoft's code and message.
//!
//! - `client`: [`PartnerCenterClient`]: one request with its retries, token and logging.
//! - `paging`: [`ListQuery`], the `@odata.nextLink` Rule and [`ReferralPages`].
//! - `error`: [`PcError`], what a request or a paging pass ends with.
//! - [`retry`]: backoff and the per-run budget; [`wire`]: the envelope and error bodies.

mod client;
mod error;
mod paging;
mod retry;
mod wire;

pub(crate) use client::PartnerCenterClient;
pub(crate) use error::PcError;
pub(crate) use paging::{ListQuery, Page, ReferralPages};
pub(crate) use retry::{RetryBudget, RetryPolicy};
use wire::{ErrorBody, WirePage};

/// The collection path under the configured `api_url` (which ends in `/v1.0`).
const COLLECTION: &str = "engagements/referrals";
