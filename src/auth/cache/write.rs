//! Writing as MSAL Python writes: new entries under its keys, known fields updated in place,
//! everything else (other apps' entries, unknown fields) kept.

use serde_json::{Map, Value};

use super::keys::{
    access_token_key, account_key, app_metadata_key, id_token_key, normalize_target,
    refresh_token_key,
};
use super::{
    ACCESS_TOKEN, ACCOUNT, APP_METADATA, ClientScope, ID_TOKEN, NewAccount, REFRESH_TOKEN,
    TokenCache, TokenGrant, env_matches, field_eq, str_field, target_holds, timestamp_field,
};

impl TokenCache {
    /// Stores a device-code sign-in the way MSAL Python's `TokenCache.add` does:
    /// AccessToken, Account, IdToken, RefreshToken, AppMetadata, MSAL Python keys.
    pub(crate) fn store_sign_in(
        &mut self,
        scope: &ClientScope,
        grant: &TokenGrant<'_>,
        account: &NewAccount<'_>,
        now: i64,
    ) {
        self.store_access_token(scope, grant, now);
        let key = account_key(account.home_account_id, &scope.environment, &scope.realm);
        let entry = object([
            ("home_account_id", account.home_account_id.into()),
            ("environment", scope.environment.as_str().into()),
            ("realm", scope.realm.as_str().into()),
            ("local_account_id", account.local_account_id.into()),
            ("username", account.username.into()),
            ("authority_type", "MSSTS".into()),
            ("account_source", account.account_source.into()),
        ]);
        merge_entry(self.section_mut(ACCOUNT), key, entry);
        self.store_id_token(scope, grant);
        if let Some(rt) = grant.refresh_token {
            let target = normalize_target(grant.scope);
            let key = refresh_token_key(
                grant.home_account_id,
                &scope.environment,
                &scope.client_id,
                &target,
            );
            let mut entry = object([
                ("credential_type", REFRESH_TOKEN.into()),
                ("secret", rt.into()),
                ("home_account_id", grant.home_account_id.into()),
                ("environment", scope.environment.as_str().into()),
                ("client_id", scope.client_id.as_str().into()),
                ("target", target.into()),
                ("last_modification_time", now.to_string().into()),
            ]);
            if let Some(f) = grant.family_id {
                entry.insert("family_id".into(), f.into());
            }
            merge_entry(self.section_mut(REFRESH_TOKEN), key, entry);
        }
        self.store_app_metadata(scope, grant);
    }

    /// Stores a refresh-token redemption as MSAL Python does: new AccessToken and IdToken,
    /// the refresh token rotated in place (`secret`, `last_modification_time`) under the key
    /// it was found at, the Account left alone. Returns false when that refresh token is
    /// gone (the account was signed out meanwhile), in which case nothing is changed.
    pub(crate) fn store_refresh(
        &mut self,
        scope: &ClientScope,
        grant: &TokenGrant<'_>,
        rt_key: &str,
        now: i64,
    ) -> bool {
        let Some(rt) = self
            .section_mut(REFRESH_TOKEN)
            .get_mut(rt_key)
            .and_then(Value::as_object_mut)
        else {
            return false;
        };
        if let Some(new_rt) = grant.refresh_token {
            rt.insert("secret".into(), new_rt.into());
            rt.insert("last_modification_time".into(), now.to_string().into());
        }
        self.store_access_token(scope, grant, now);
        self.store_id_token(scope, grant);
        self.store_app_metadata(scope, grant);
        true
    }

    fn store_access_token(&mut self, scope: &ClientScope, grant: &TokenGrant<'_>, now: i64) {
        let target = normalize_target(grant.scope);
        // Our expired tokens (MSAL deletes those it meets) and those the new one replaces
        // (same realm, a target holding our scope; MSAL.NET drops such overlaps too) go.
        let home = grant.home_account_id;
        let superseded: Vec<String> = self
            .entries(ACCESS_TOKEN)
            .filter(|(_, e)| {
                field_eq(e, "client_id", &scope.client_id)
                    && env_matches(e, &scope.environment)
                    && field_eq(e, "home_account_id", home)
                    && (timestamp_field(e, "expires_on").is_none_or(|t| t <= now)
                        || (field_eq(e, "realm", &scope.realm)
                            && target_holds(
                                str_field(e, "target").unwrap_or_default(),
                                &scope.scope,
                            )))
            })
            .map(|(k, _)| k.clone())
            .collect();
        let section = self.section_mut(ACCESS_TOKEN);
        for k in superseded {
            section.shift_remove(&k);
        }
        let key = access_token_key(
            home,
            &scope.environment,
            &scope.client_id,
            &scope.realm,
            &target,
        );
        let mut entry = object([
            ("credential_type", ACCESS_TOKEN.into()),
            ("secret", grant.access_token.into()),
            ("home_account_id", home.into()),
            ("environment", scope.environment.as_str().into()),
            ("client_id", scope.client_id.as_str().into()),
            ("target", target.into()),
            ("realm", scope.realm.as_str().into()),
            ("token_type", grant.token_type.into()),
            ("cached_at", now.to_string().into()),
            ("expires_on", (now + grant.expires_in).to_string().into()),
            (
                "extended_expires_on",
                (now + grant.ext_expires_in).to_string().into(),
            ),
        ]);
        if let Some(r) = grant.refresh_in {
            entry.insert("refresh_on".into(), (now + r).to_string().into());
        }
        replace_entry(section, key, entry, &["refresh_on", "key_id"]);
    }

    fn store_id_token(&mut self, scope: &ClientScope, grant: &TokenGrant<'_>) {
        let Some(id_token) = grant.id_token else {
            return;
        };
        let key = id_token_key(
            grant.home_account_id,
            &scope.environment,
            &scope.client_id,
            &scope.realm,
        );
        let entry = object([
            ("credential_type", ID_TOKEN.into()),
            ("secret", id_token.into()),
            ("home_account_id", grant.home_account_id.into()),
            ("environment", scope.environment.as_str().into()),
            ("realm", scope.realm.as_str().into()),
            ("client_id", scope.client_id.as_str().into()),
        ]);
        merge_entry(self.section_mut(ID_TOKEN), key, entry);
    }

    fn store_app_metadata(&mut self, scope: &ClientScope, grant: &TokenGrant<'_>) {
        let key = app_metadata_key(&scope.environment, &scope.client_id);
        let mut entry = object([
            ("client_id", scope.client_id.as_str().into()),
            ("environment", scope.environment.as_str().into()),
        ]);
        if let Some(f) = grant.family_id {
            entry.insert("family_id".into(), f.into());
        }
        merge_entry(self.section_mut(APP_METADATA), key, entry);
    }

    /// once no other client holds credentials for it; other apps' entries stay.
    /// Returns how many entries were removed.
    pub(crate) fn remove_account(&mut self, scope: &ClientScope, home_account_id: &str) -> usize {
        let of_account = |e: &Map<String, Value>| {
            env_matches(e, &scope.environment) && field_eq(e, "home_account_id", home_account_id)
        };
        let mut removed = 0;
        for section in [ACCESS_TOKEN, REFRESH_TOKEN, ID_TOKEN] {
            removed += self.remove_where(section, |e| {
                field_eq(e, "client_id", &scope.client_id) && of_account(e)
            });
        }
        let still_used = [ACCESS_TOKEN, REFRESH_TOKEN, ID_TOKEN]
            .iter()
            .any(|section| self.entries(section).any(|(_, e)| of_account(e)));
        if !still_used {
            removed += self.remove_where(ACCOUNT, of_account);
        }
        removed
    }

    /// Removes the entries of `section` that `matches`; returns how many.
    fn remove_where(
        &mut self,
        section: &str,
        matches: impl Fn(&Map<String, Value>) -> bool,
    ) -> usize {
        let keys: Vec<String> = self
            .entries(section)
            .filter(|(_, e)| matches(e))
            .map(|(k, _)| k.clone())
            .collect();
        let Some(Value::Object(m)) = self.root.get_mut(section) else {
            return 0;
        };
        keys.iter().filter(|k| m.shift_remove(*k).is_some()).count()
    }
}

fn object<const N: usize>(fields: [(&str, Value); N]) -> Map<String, Value> {
    fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Updates known fields in place and keeps any others (MSAL.NET and Node add their own).
fn merge_entry(section: &mut Map<String, Value>, key: String, entry: Map<String, Value>) {
    match section.get_mut(&key).and_then(Value::as_object_mut) {
        Some(existing) => existing.extend(entry),
        None => {
            section.insert(key, Value::Object(entry));
        }
    }
}

/// Like [`merge_entry`], but optional fields that the new entry lacks are dropped, so a
/// stale `refresh_on` cannot outlive the token it described.
fn replace_entry(
    section: &mut Map<String, Value>,
    key: String,
    entry: Map<String, Value>,
    optional: &[&str],
) {
    if let Some(existing) = section.get_mut(&key).and_then(Value::as_object_mut) {
        for field in optional {
            if !entry.contains_key(*field) {
                existing.remove(*field);
            }
        }
    }
    merge_entry(section, key, entry);
}
