//! Reading: the account, refresh token and access token MSAL would pick, matched by
//! field values (other writers use other key formats).

use secrecy::SecretString;
use serde_json::{Map, Value};

use super::keys::same_environment;
use super::{
    ACCESS_TOKEN, ACCOUNT, APP_METADATA, AccessTokenEntry, AccountEntry, ClientScope, ID_TOKEN,
    REFRESH_TOKEN, RefreshTokenEntry, TokenCache, env_matches, field_eq, str_field, target_holds,
    timestamp_field,
};

impl TokenCache {
    /// Whether this client should redeem family (FOCI) refresh tokens: only when our own
    /// AppMetadata says we are in a family. MSAL also tries them when AppMetadata is
    /// missing, then falls back; a failed family redemption would read as `invalid_grant`
    /// here, so we do not guess.
    fn client_in_family(&self, scope: &ClientScope) -> bool {
        self.entries(APP_METADATA).any(|(_, e)| {
            field_eq(e, "client_id", &scope.client_id)
                && env_matches(e, &scope.environment)
                && str_field(e, "family_id").is_some_and(|f| !f.is_empty())
        })
    }

    fn usable_refresh_tokens<'a>(
        &'a self,
        scope: &'a ClientScope,
        home_account_id: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a Map<String, Value>)> + 'a {
        let family = self.client_in_family(scope);
        self.entries(REFRESH_TOKEN).filter(move |(_, e)| {
            str_field(e, "secret").is_some_and(|s| !s.is_empty())
                && env_matches(e, &scope.environment)
                && field_eq(e, "home_account_id", home_account_id)
                && (field_eq(e, "client_id", &scope.client_id)
                    || (family && str_field(e, "family_id") == Some("1")))
        })
    }

    /// Accounts in our environment (exact host first, else an alias) that hold a refresh
    /// token this client can redeem, one per home account (the entry for our realm if
    /// there is one). Other apps' accounts are not ours to pick.
    pub(crate) fn accounts(&self, scope: &ClientScope) -> Vec<AccountEntry> {
        let candidates = |exact: bool| -> Vec<AccountEntry> {
            self.entries(ACCOUNT)
                .filter(|(_, e)| {
                    let env = str_field(e, "environment").unwrap_or_default();
                    let env_ok = if exact {
                        env.eq_ignore_ascii_case(&scope.environment)
                    } else {
                        same_environment(env, &scope.environment)
                    };
                    env_ok && matches!(str_field(e, "authority_type"), Some("MSSTS" | "ADFS"))
                })
                .filter_map(|(_, e)| {
                    let home = str_field(e, "home_account_id")?;
                    self.usable_refresh_tokens(scope, home).next()?;
                    Some(AccountEntry {
                        home_account_id: home.to_owned(),
                        environment: str_field(e, "environment").unwrap_or_default().to_owned(),
                        realm: str_field(e, "realm").unwrap_or_default().to_owned(),
                        username: str_field(e, "username").unwrap_or_default().to_owned(),
                        local_account_id: str_field(e, "local_account_id")
                            .unwrap_or_default()
                            .to_owned(),
                    })
                })
                .collect()
        };
        let mut found = candidates(true);
        if found.is_empty() {
            found = candidates(false);
        }
        let mut unique: Vec<AccountEntry> = Vec::new();
        for account in found {
            match unique.iter_mut().find(|u| {
                u.home_account_id
                    .eq_ignore_ascii_case(&account.home_account_id)
            }) {
                Some(existing) => {
                    if account.realm.eq_ignore_ascii_case(&scope.realm) {
                        *existing = account;
                    }
                }
                None => unique.push(account),
            }
        }
        unique
    }

    /// The refresh token MSAL would redeem for this account: family tokens first when we
    /// are in a family, then ours; the most recently modified first.
    pub(crate) fn refresh_token(
        &self,
        scope: &ClientScope,
        home_account_id: &str,
    ) -> Option<RefreshTokenEntry> {
        self.usable_refresh_tokens(scope, home_account_id)
            .max_by_key(|(_, e)| {
                let family = str_field(e, "family_id") == Some("1");
                (
                    family,
                    timestamp_field(e, "last_modification_time").unwrap_or(0),
                )
            })
            .map(|(key, e)| RefreshTokenEntry {
                key: key.clone(),
                secret: SecretString::from(str_field(e, "secret").unwrap_or_default()),
                last_modification_time: timestamp_field(e, "last_modification_time"),
            })
    }

    /// The latest-expiring access token for this client, account and realm whose target
    /// holds our scope (expired ones included: the caller decides what is usable).
    pub(crate) fn access_token(
        &self,
        scope: &ClientScope,
        home_account_id: &str,
    ) -> Option<AccessTokenEntry> {
        self.entries(ACCESS_TOKEN)
            .filter(|(_, e)| {
                str_field(e, "secret").is_some_and(|s| !s.is_empty())
                    && field_eq(e, "client_id", &scope.client_id)
                    && env_matches(e, &scope.environment)
                    && field_eq(e, "realm", &scope.realm)
                    && field_eq(e, "home_account_id", home_account_id)
                    && target_holds(str_field(e, "target").unwrap_or_default(), &scope.scope)
            })
            .filter_map(|(_, e)| {
                Some(AccessTokenEntry {
                    secret: SecretString::from(str_field(e, "secret")?),
                    expires_on: timestamp_field(e, "expires_on")?,
                    refresh_on: timestamp_field(e, "refresh_on"),
                })
            })
            .max_by_key(|at| at.expires_on)
    }

    /// Home accounts this client holds any credential for, in first-seen order.
    pub(crate) fn client_home_accounts(&self, scope: &ClientScope) -> Vec<String> {
        let mut homes: Vec<String> = Vec::new();
        for section in [ACCESS_TOKEN, REFRESH_TOKEN, ID_TOKEN] {
            for (_, e) in self.entries(section) {
                if field_eq(e, "client_id", &scope.client_id)
                    && env_matches(e, &scope.environment)
                    && let Some(home) = str_field(e, "home_account_id")
                    && !homes.iter().any(|h| h.eq_ignore_ascii_case(home))
                {
                    homes.push(home.to_owned());
                }
            }
        }
        homes
    }

    /// The username an Account entry gives this home account, if any.
    pub(crate) fn username_of(&self, scope: &ClientScope, home_account_id: &str) -> Option<String> {
        self.entries(ACCOUNT)
            .find(|(_, e)| {
                env_matches(e, &scope.environment)
                    && field_eq(e, "home_account_id", home_account_id)
            })
            .and_then(|(_, e)| str_field(e, "username"))
            .map(str::to_owned)
    }
}
