//! `status` (the auth part) and `logout`: read or edit the cache, never the network;
//! `status` only reads.

use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::cache::EXPIRY_MARGIN_SECS;
use super::cache_file::Contents;
use super::{AuthError, Settings, SignInRequired, unix_to_utc};
use crate::config::Config;

/// Refresh tokens die after this long unused (`MaxInactiveTime`, not configurable).
const REFRESH_TOKEN_INACTIVITY_DAYS: i64 = 90;

/// What `status` reports about the login, offline: whether the authority still honours
/// the refresh token is only known by using it (the daemon's health shows that).
#[derive(Clone, Debug, Serialize)]
pub struct AuthStatusReport {
    pub(crate) cache_path: PathBuf,
    pub(crate) client_id: String,
    /// The configured tenant (the cache's `realm`).
    pub tenant: String,
    pub account: Option<String>,
    pub(crate) home_account_id: Option<String>,
    pub(crate) access_token_expires_on: Option<DateTime<Utc>>,
    /// More than 5 minutes left: usable without contacting the authority.
    pub access_token_usable: bool,
    /// When the refresh token was last rotated (each use rotates it).
    pub(crate) refresh_token_updated_at: Option<DateTime<Utc>>,
    pub refresh_token_age_days: Option<i64>,
    /// When the 90-day inactivity window closes unless the token is used before then.
    pub refresh_token_inactivity_expires_on: Option<DateTime<Utc>>,
    pub sign_in_required: bool,
    /// Why a sign-in is required, when it is.
    pub(crate) reason: Option<String>,
}

impl AuthStatusReport {
    fn empty(settings: &Settings) -> Self {
        Self {
            cache_path: settings.file.path().to_owned(),
            client_id: settings.scope.client_id.clone(),
            tenant: settings.scope.realm.clone(),
            account: None,
            home_account_id: None,
            access_token_expires_on: None,
            access_token_usable: false,
            refresh_token_updated_at: None,
            refresh_token_age_days: None,
            refresh_token_inactivity_expires_on: None,
            sign_in_required: true,
            reason: None,
        }
    }
}

impl AuthStatusReport {
    /// The error `status` ends with when a sign-in is required.
    pub(crate) fn sign_in_required(&self) -> Option<SignInRequired> {
        self.sign_in_required.then(|| {
            SignInRequired::new(
                self.reason
                    .clone()
                    .unwrap_or_else(|| format!("no login in {}", self.cache_path.display())),
            )
        })
    }
}

impl std::fmt::Display for AuthStatusReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let time = |t: Option<DateTime<Utc>>| {
            t.map_or_else(
                || "unknown".to_owned(),
                |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            )
        };
        writeln!(f, "Token cache:          {}", self.cache_path.display())?;
        writeln!(f, "Client id:            {}", self.client_id)?;
        writeln!(f, "Tenant:               {}", self.tenant)?;
        writeln!(
            f,
            "Account:              {}",
            self.account.as_deref().unwrap_or("(none)")
        )?;
        if self.account.is_some() {
            let usable = if self.access_token_usable {
                "usable"
            } else {
                "expired; refreshed on next use"
            };
            writeln!(
                f,
                "Access token expires: {} ({usable})",
                time(self.access_token_expires_on)
            )?;
            let age = self
                .refresh_token_age_days
                .map_or_else(|| "unknown".to_owned(), |d| format!("{d} days"));
            writeln!(
                f,
                "Refresh token age:    {age} (last rotated {})",
                time(self.refresh_token_updated_at)
            )?;
            writeln!(
                f,
                "Inactivity window:    closes {} unless used before",
                time(self.refresh_token_inactivity_expires_on)
            )?;
        }
        let action = SignInRequired::ACTION;
        match (&self.sign_in_required, &self.reason) {
            (true, Some(reason)) => write!(f, "Sign-in required:     yes, {action} ({reason})"),
            (true, None) => write!(f, "Sign-in required:     yes, {action}"),
            (false, _) => write!(f, "Sign-in required:     no"),
        }
    }
}

/// The login as the cache describes it, read without the lock and without changing
/// anything on disk: a corrupt cache is reported as needing a sign-in and left where it
/// is (a writer sets it aside); configuration and permission problems are errors.
pub fn status(config: &Config) -> Result<AuthStatusReport, AuthError> {
    let settings = Settings::from_config(config)?;
    let mut report = AuthStatusReport::empty(&settings);
    let path = settings.file.path().display();
    let cache = match settings.file.read()? {
        Contents::Parsed(cache) => cache,
        Contents::Missing => {
            report.reason = Some(format!("{path} does not exist"));
            return Ok(report);
        }
        Contents::Corrupt(why) => {
            report.reason = Some(format!(
                "the token cache {path} could not be parsed ({why}); it was left as it is, \
                 and `login` or the daemon's next use sets it aside"
            ));
            return Ok(report);
        }
    };
    let account = match settings.select_account(&cache) {
        Ok(account) => account,
        Err(AuthError::SignInRequired(required)) => {
            report.reason = Some(required.reason().to_owned());
            return Ok(report);
        }
        Err(e) => return Err(e),
    };
    let now = Utc::now();
    let at = cache.access_token(&settings.scope, &account.home_account_id);
    let rt = cache.refresh_token(&settings.scope, &account.home_account_id);
    report.access_token_expires_on = at.as_ref().and_then(|a| unix_to_utc(a.expires_on));
    report.access_token_usable = at
        .as_ref()
        .is_some_and(|a| a.expires_on - now.timestamp() > EXPIRY_MARGIN_SECS);
    report.refresh_token_updated_at = rt
        .as_ref()
        .and_then(|r| r.last_modification_time)
        .and_then(unix_to_utc);
    report.refresh_token_age_days = report
        .refresh_token_updated_at
        .map(|t| (now - t).num_days());
    report.refresh_token_inactivity_expires_on = report
        .refresh_token_updated_at
        .map(|t| t + Duration::days(REFRESH_TOKEN_INACTIVITY_DAYS));
    report.account = Some(account.username);
    report.home_account_id = Some(account.home_account_id);
    match report.refresh_token_inactivity_expires_on {
        Some(closes) if closes <= now => {
            report.reason = Some(format!(
                "the refresh token was last used more than {REFRESH_TOKEN_INACTIVITY_DAYS} days ago"
            ));
        }
        _ => report.sign_in_required = false,
    }
    Ok(report)
}

/// The result of `logout`.
#[derive(Clone, Debug, Serialize)]
pub struct LogoutOutcome {
    /// Usernames (or home account ids) whose login was removed.
    pub accounts: Vec<String>,
    pub(crate) removed_entries: usize,
    pub(crate) cache_path: PathBuf,
}

impl std::fmt::Display for LogoutOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.accounts.is_empty() {
            write!(
                f,
                "No saved login for this client in {}; nothing to remove.",
                self.cache_path.display()
            )
        } else {
            write!(
                f,
                "Signed out {}: removed {} entries from {}; other apps' entries were kept.",
                self.accounts.join(", "),
                self.removed_entries,
                self.cache_path.display()
            )
        }
    }
}

/// Removes this client's entries for the account (the configured one, else every account
/// this client signed in), leaving other apps' entries alone.
pub fn logout(config: &Config) -> Result<LogoutOutcome, AuthError> {
    let settings = Settings::from_config(config)?;
    let mut outcome = LogoutOutcome {
        accounts: Vec::new(),
        removed_entries: 0,
        cache_path: settings.file.path().to_owned(),
    };
    settings.file.check()?;
    if !settings.file.path().exists() {
        return Ok(outcome);
    }
    let _lock = settings.file.lock()?;
    let mut cache = match settings.file.load_locked() {
        Ok(Some(cache)) => cache,
        Ok(None) => return Ok(outcome),
        // Unparseable: already moved aside, so nothing of ours is left in place.
        Err(e) if e.is_sign_in_required() => return Ok(outcome),
        Err(e) => return Err(e),
    };
    for home in cache.client_home_accounts(&settings.scope) {
        let username = cache.username_of(&settings.scope, &home);
        if let Some(want) = &settings.account
            && !username
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(want))
        {
            continue;
        }
        outcome.removed_entries += cache.remove_account(&settings.scope, &home);
        outcome
            .accounts
            .push(username.filter(|u| !u.is_empty()).unwrap_or(home));
    }
    if outcome.removed_entries > 0 {
        settings.file.write(&cache)?;
        let accounts = outcome.accounts.join(", ");
        tracing::info!(event = "logout", accounts = %accounts, removed_entries = outcome.removed_entries,
            "Signed out {accounts}: removed this client's login from the token cache.");
    }
    Ok(outcome)
}
