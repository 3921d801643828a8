//! The knobs of one emulator instance.

use std::time::Duration;

use crate::activity::Activity;
use crate::faults::FaultSpec;

/// Everything an [`crate::Emulator`] is built from. `Default` suits tests: 100 referrals, seed 42,
/// no faults, fast device-code polling, port 0.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Size of the generated dataset (1 to 1,000,000; 0 is allowed and gives an empty tenant).
    pub referrals: usize,
    /// Seeds the dataset, the tenant and client ids, the mutations and the probabilistic faults:
    /// the same seed and size give byte-identical pages.
    pub seed: u64,
    /// Faults injected into the referrals API.
    pub faults: FaultSpec,
    /// Approve a pending device code by itself once it has been polled this many times, so the demo
    /// needs no human. `None` waits for [`crate::Emulator::approve`] or the `/devicelogin` page.
    pub auto_approve_after: Option<u32>,
    /// `expires_in` of access tokens (Entra: a random 60-90 minutes).
    pub access_token_lifetime: Duration,
    /// Emit `@odata.nextLink` in the documented odd form: plain http, `/v1.0/referrals` without
    /// `/engagements`, only `$skiptoken` in the query. That path is not served, so a client must
    /// repair the link as the reference says.
    pub quirky_next_link: bool,
    /// Answer a `$filter` on `updatedDateTime` with 400 `invalidRequest`, as an API version or
    /// tenant without that filter would; a client must then fall back to full listings.
    pub refuse_updated_filter: bool,
    /// Turn the newest referrals (the first page of the default listing) into the hostile data
    /// third parties can type into Partner Center, one case each: a NUL in `name`; a NUL in a
    /// nested value and in a nested key (`details`); a NUL in `id`; an `id` of 3,000 random
    /// characters (past PostgreSQL's index limit); a 10 KB random `status` (an indexed column);
    /// a 10 KB `customerProfile.name` (long, but not indexed). A client must store what it can
    /// and go on.
    pub poison_referrals: bool,
    /// Let the tenant live in the present (see [`Activity`]): at start the New referrals are
    /// re-dated as arrivals of the last 14 days, expiring days ahead (about one in five within
    /// 48 hours), and rounds of changes then move referrals on. `None` keeps every dataset
    /// timestamp before 2025-11-01, so pages never depend on the clock.
    pub activity: Option<Activity>,
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Serve https instead of http, with a certificate made at start (MSAL and other identity
    /// clients refuse http authorities). Clients must trust
    /// [`crate::Emulator::ca_certificate_pem`]; every advertised URL is then https.
    pub tls: bool,
    /// `interval` returned by `/devicecode` (Entra says 5). 0 lets tests poll back to back and
    /// turns the `slow_down` check off.
    pub device_code_interval_secs: u64,
    /// `expires_in` of device codes (Entra: 900).
    pub device_code_lifetime: Duration,
    /// Registers the app as a confidential client with this secret: every `/token` call must then
    /// carry it. `None` (the daemon's case) is a public client, which must not send one.
    pub client_secret: Option<String>,
    /// A refresh token unused for this long dies with AADSTS70008 (Entra: 90 days).
    pub refresh_token_max_inactive: Duration,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            referrals: 100,
            seed: 42,
            faults: FaultSpec::default(),
            auto_approve_after: None,
            access_token_lifetime: Duration::from_secs(3600),
            quirky_next_link: false,
            refuse_updated_filter: false,
            poison_referrals: false,
            activity: None,
            port: 0,
            tls: false,
            device_code_interval_secs: 1,
            device_code_lifetime: Duration::from_secs(900),
            client_secret: None,
            refresh_token_max_inactive: Duration::from_secs(90 * 24 * 3600),
        }
    }
}
