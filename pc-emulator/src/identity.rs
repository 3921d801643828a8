//! The identity platform's state machine: device codes, access and refresh tokens. No HTTP here;
//! `identity_http` maps forms to these calls and errors to Entra bodies.
//!
//! Faithful points a client depends on: refresh tokens rotate but the old one stays valid (the
//! client must switch anyway); revoked ones fail with AADSTS50173, idle ones with AADSTS70008;
//! polling faster than `interval` gets `slow_down` and adds 5 s to the interval (RFC 8628).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::aad_error::AadError;
use crate::config::EmulatorConfig;
use crate::dataset::{guid, rng_for};
use crate::timefmt;

/// The resource ("Microsoft Partner") whose delegated scope the daemon asks for.
pub(crate) const PARTNER_RESOURCE: &str = "https://api.partner.microsoft.com";
const PARTNER_APP_ID: &str = "4990cffe-04e8-4e8b-808a-1175604b879f";
const CSP_RESOURCE: &str = "https://api.partnercenter.microsoft.com";
const CSP_APP_ID: &str = "fa3d9a0c-3fb0-42cc-9193-47c7ecd2edbd";
const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";
/// OIDC scopes in the order they are echoed in `scope`.
const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// A token endpoint answer, as Entra sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub token_type: String,
    pub scope: String,
    pub expires_in: u64,
    pub ext_expires_in: u64,
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_info: Option<String>,
}

/// A `/devicecode` answer, fields in Entra's order.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DeviceCodeResponse {
    pub user_code: String,
    pub device_code: String,
    pub verification_uri: String,
    pub expires_in: u64,
    pub interval: u64,
    pub message: String,
}

/// Which API an access token is for; the referrals API accepts only [`Resource::PartnerCenter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    PartnerCenter,
    Csp,
    Graph,
}

/// What a token request was granted: one resource plus OIDC scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    resource: Resource,
    oidc: Vec<&'static str>,
}

impl Grant {
    /// What the daemon asks for at sign-in.
    fn full() -> Grant {
        Grant {
            resource: Resource::PartnerCenter,
            oidc: vec!["openid", "profile", "offline_access"],
        }
    }

    /// Parses a space-separated `scope` parameter the way the v2 endpoint does.
    pub fn parse(scope: &str) -> Result<Grant, AadError> {
        let mut resource = None;
        let mut oidc = Vec::new();
        for item in scope.split_whitespace() {
            if let Some(name) = OIDC_SCOPES.iter().find(|s| s.eq_ignore_ascii_case(item)) {
                if !oidc.contains(name) {
                    oidc.push(*name);
                }
                continue;
            }
            let this = resource_of(item)?;
            match resource {
                Some(other) if other != this => {
                    return Err(AadError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_scope",
                        700022,
                        format!(
                            "The provided value for the input parameter scope is not valid because it contains more than one resource. Scope {scope} is not valid."
                        ),
                    ));
                }
                _ => resource = Some(this),
            }
        }
        if resource.is_none() && oidc.is_empty() {
            return Err(AadError::missing_parameter("scope"));
        }
        oidc.sort_by_key(|s| OIDC_SCOPES.iter().position(|o| o == s));
        Ok(Grant {
            // Only OIDC scopes: Entra issues a Microsoft Graph token.
            resource: resource.unwrap_or(Resource::Graph),
            oidc,
        })
    }

    fn has(&self, scope: &str) -> bool {
        self.oidc.contains(&scope)
    }

    /// The `scope` of the response: the granted permission (`.default` expanded), then OIDC.
    fn response_scope(&self) -> String {
        let mut parts = vec![match self.resource {
            Resource::PartnerCenter => format!("{PARTNER_RESOURCE}/user_impersonation"),
            Resource::Csp => format!("{CSP_RESOURCE}/user_impersonation"),
            Resource::Graph => format!("{GRAPH_RESOURCE}/User.Read"),
        }];
        parts.extend(self.oidc.iter().map(|s| s.to_string()));
        parts.join(" ")
    }
}

fn resource_of(item: &str) -> Result<Resource, AadError> {
    let lower = item.to_ascii_lowercase();
    let (resource, permission) = match lower.rsplit_once('/') {
        Some((resource, permission)) => (resource.trim_end_matches('/'), permission),
        None if lower == "user.read" => return Ok(Resource::Graph),
        None => ("", lower.as_str()),
    };
    let known = match resource {
        r if r == PARTNER_RESOURCE || r == PARTNER_APP_ID => {
            Some((Resource::PartnerCenter, "user_impersonation"))
        }
        r if r == CSP_RESOURCE || r == CSP_APP_ID => Some((Resource::Csp, "user_impersonation")),
        r if r == GRAPH_RESOURCE => Some((Resource::Graph, "user.read")),
        _ => None,
    };
    match known {
        Some((res, perm)) if permission == perm || permission == ".default" => Ok(res),
        Some(_) => Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            format!(
                "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {item} is not valid."
            ),
        )),
        None if resource.is_empty() => Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            format!(
                "The provided value for the input parameter 'scope' is not valid. The scope {item} is not valid."
            ),
        )),
        None => Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            format!(
                "The resource principal named {resource} was not found in the tenant. This can happen if the application has not been installed by the administrator of the tenant."
            ),
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeviceState {
    Pending,
    Approved,
    Declined,
    Redeemed,
}

struct DeviceCode {
    user_code: String,
    tenant: String,
    grant: Grant,
    expires: Instant,
    interval: Duration,
    last_poll: Option<Instant>,
    polls: u32,
    state: DeviceState,
}

struct AccessToken {
    resource: Resource,
    expires: Instant,
    /// Set by [`Identity::expire_access_tokens`].
    forced_expired: bool,
    /// API requests served, for the `token_expire` fault.
    uses: u32,
}

struct RefreshToken {
    grant: Grant,
    issued_ticks: i64,
    last_used: Instant,
    revoked: bool,
    /// A newer refresh token was issued from this one.
    superseded: bool,
}

/// The signed-in user every login yields.
struct User {
    oid: String,
    username: String,
    name: String,
}

/// Outcome of checking a bearer token on the referrals API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccessCheck {
    Valid,
    Missing,
    Unknown,
    Expired,
    /// Expired by the `token_expire` fault.
    ExpiredByFault,
    WrongAudience,
}

/// Successful refresh plus whether the refresh token used had already been rotated away.
pub(crate) struct Refreshed {
    pub tokens: TokenResponse,
    pub superseded: bool,
}

/// Identity state of one emulator: the registered app, the user, codes and tokens.
pub(crate) struct Identity {
    base_url: String,
    pub tenant_id: String,
    pub client_id: String,
    tenant_domain: String,
    client_secret: Option<String>,
    user: User,
    access_lifetime: Duration,
    device_interval: Duration,
    device_lifetime: Duration,
    refresh_max_inactive: Duration,
    auto_approve_after: Option<u32>,
    device_codes: HashMap<String, DeviceCode>,
    access_tokens: HashMap<String, AccessToken>,
    refresh_tokens: HashMap<String, RefreshToken>,
}

/// Random token material (not seeded: tokens need not repeat across runs, only be unique).
fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(&mut buf[..]);
    URL_SAFE_NO_PAD.encode(buf)
}

fn b64_json(value: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

impl Identity {
    pub fn new(config: &EmulatorConfig, base_url: &str) -> Identity {
        let mut rng = rng_for(config.seed, 0x6964_656e_7469_7479, 0);
        let tenant_id = guid(&mut rng);
        let client_id = guid(&mut rng);
        let oid = guid(&mut rng);
        Identity {
            base_url: base_url.to_string(),
            tenant_id,
            client_id,
            tenant_domain: "adatumpartners.com".into(),
            client_secret: config.client_secret.clone(),
            user: User {
                oid,
                username: "referral-sync@adatumpartners.com".into(),
                name: "Referral Sync (Şükrü Işık)".into(),
            },
            access_lifetime: config.access_token_lifetime,
            device_interval: Duration::from_secs(config.device_code_interval_secs),
            device_lifetime: config.device_code_lifetime,
            refresh_max_inactive: config.refresh_token_max_inactive,
            auto_approve_after: config.auto_approve_after,
            device_codes: HashMap::new(),
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
        }
    }

    /// Accepts the tenant GUID, its domain, `organizations` and `common` (the app is multi-tenant
    /// capable, so AADSTS50194 never happens); anything else is AADSTS90002.
    pub fn check_tenant(&self, tenant: &str) -> Result<(), AadError> {
        let t = tenant.to_ascii_lowercase();
        if t == self.tenant_id || t == self.tenant_domain || t == "organizations" || t == "common" {
            return Ok(());
        }
        Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        ))
    }

    /// Checks `client_id` (unknown: AADSTS700016) and the client secret rules of the
    /// registration: a public client must not send one (AADSTS700025), a confidential one must.
    pub fn check_client(
        &self,
        client_id: Option<&str>,
        secret: Option<&str>,
        check_secret: bool,
    ) -> Result<(), AadError> {
        let Some(client_id) = client_id.filter(|c| !c.is_empty()) else {
            return Err(AadError::missing_parameter("client_id"));
        };
        if !client_id.eq_ignore_ascii_case(&self.client_id) {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                700016,
                format!(
                    "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
                    self.tenant_domain
                ),
            ));
        }
        if !check_secret {
            return Ok(());
        }
        match (&self.client_secret, secret) {
            (None, Some(_)) => Err(AadError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                700025,
                "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
            )),
            (Some(_), None) => Err(AadError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )),
            (Some(expected), Some(given)) if expected != given => Err(AadError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
                format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                    self.client_id
                ),
            )),
            _ => Ok(()),
        }
    }

    pub fn start_device_flow(
        &mut self,
        tenant: &str,
        grant: Grant,
        now: Instant,
    ) -> DeviceCodeResponse {
        const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let mut rng = rand::rng();
        let user_code: String = (0..9)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect();
        let device_code = format!("DAQABIQEAAAD{}", random_b64(96));
        let verification_uri = format!("{}/devicelogin", self.base_url);
        self.device_codes.insert(
            device_code.clone(),
            DeviceCode {
                user_code: user_code.clone(),
                tenant: tenant.to_ascii_lowercase(),
                grant,
                expires: now + self.device_lifetime,
                interval: self.device_interval,
                last_poll: None,
                polls: 0,
                state: DeviceState::Pending,
            },
        );
        DeviceCodeResponse {
            message: format!(
                "To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate."
            ),
            user_code,
            device_code,
            verification_uri,
            expires_in: self.device_lifetime.as_secs(),
            interval: self.device_interval.as_secs(),
        }
    }

    /// One device-code poll of `/token`.
    pub fn poll_device_code(
        &mut self,
        tenant: &str,
        device_code: &str,
        client_info: bool,
        now: Instant,
    ) -> Result<TokenResponse, AadError> {
        let bad_code = || {
            AadError::new(
                StatusCode::BAD_REQUEST,
                "bad_verification_code",
                70018,
                "The provided value for the input parameter 'device_code' is not valid.",
            )
        };
        let auto_approve_after = self.auto_approve_after;
        let code = self
            .device_codes
            .get_mut(device_code)
            .ok_or_else(bad_code)?;
        if code.tenant != tenant.to_ascii_lowercase() {
            return Err(bad_code());
        }
        if code.state == DeviceState::Redeemed {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                70000,
                "The provided value for the 'device_code' is not valid: it was already redeemed.",
            ));
        }
        if now >= code.expires {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "expired_token",
                70019,
                "Verification code expired.",
            ));
        }
        let too_fast = code
            .last_poll
            .is_some_and(|last| now.duration_since(last) < code.interval);
        code.last_poll = Some(now);
        if too_fast {
            code.interval += Duration::from_secs(5);
            return Err(AadError::plain(
                StatusCode::BAD_REQUEST,
                "slow_down",
                format!(
                    "The client is polling too quickly. Wait at least {} seconds between polls.",
                    code.interval.as_secs()
                ),
            ));
        }
        code.polls += 1;
        if code.state == DeviceState::Pending && auto_approve_after.is_some_and(|k| code.polls > k)
        {
            code.state = DeviceState::Approved;
        }
        match code.state {
            DeviceState::Pending => Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            )),
            DeviceState::Declined => Err(AadError::plain(
                StatusCode::BAD_REQUEST,
                "authorization_declined",
                "The end user declined the authorization request.",
            )),
            DeviceState::Approved | DeviceState::Redeemed => {
                code.state = DeviceState::Redeemed;
                let grant = code.grant.clone();
                Ok(self.mint(&grant, client_info, now))
            }
        }
    }

    /// The refresh-token grant: rotates the refresh token; the old one stays usable.
    pub fn refresh(
        &mut self,
        refresh_token: &str,
        scope: Option<&str>,
        client_info: bool,
        now: Instant,
    ) -> Result<Refreshed, AadError> {
        let max_inactive = self.refresh_max_inactive;
        let Some(record) = self.refresh_tokens.get_mut(refresh_token) else {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                9002313,
                "Invalid request. Request is malformed or invalid.",
            ));
        };
        let issued = timefmt::format(record.issued_ticks);
        if record.revoked {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                50173,
                format!(
                    "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '{issued}' and the TokensValidFrom date (before which tokens are not valid) for this user is '{}'.",
                    timefmt::format(timefmt::now_ticks())
                ),
            ));
        }
        let idle = now.duration_since(record.last_used);
        if idle > max_inactive {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                70008,
                format!(
                    "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource. The refresh token was issued on '{issued}' and was inactive for {}s.",
                    idle.as_secs()
                ),
            ));
        }
        let mut grant = match scope.filter(|s| !s.trim().is_empty()) {
            Some(scope) => Grant::parse(scope)?,
            None => record.grant.clone(),
        };
        // Refresh tokens are not bound to a resource, but offline access was granted at sign-in.
        if record.grant.has("offline_access") && !grant.has("offline_access") {
            grant.oidc.push("offline_access");
        }
        let superseded = record.superseded;
        record.superseded = true;
        record.last_used = now;
        Ok(Refreshed {
            tokens: self.mint(&grant, client_info, now),
            superseded,
        })
    }

    /// Mints a token response for the signed-in user.
    pub fn mint(&mut self, grant: &Grant, client_info: bool, now: Instant) -> TokenResponse {
        let now_ticks = timefmt::now_ticks();
        let iat = timefmt::unix_secs(now_ticks);
        let lifetime = self.access_lifetime.as_secs();
        let audience = match grant.resource {
            Resource::PartnerCenter => PARTNER_RESOURCE,
            Resource::Csp => CSP_RESOURCE,
            Resource::Graph => "00000003-0000-0000-c000-000000000000",
        };
        let claims = json!({
            "aud": audience,
            "iss": format!("https://sts.windows.net/{}/", self.tenant_id),
            "iat": iat, "nbf": iat, "exp": iat + lifetime as i64,
            "acr": "1", "amr": ["pwd", "mfa"],
            "appid": self.client_id, "appidacr": "0",
            "name": self.user.name, "oid": self.user.oid,
            "scp": grant.response_scope().split(' ').next().and_then(|s| s.rsplit('/').next()).unwrap_or_default(),
            "sub": self.user.oid, "tid": self.tenant_id,
            "unique_name": self.user.username, "upn": self.user.username,
            "uti": random_b64(16), "ver": "1.0",
        });
        let access_token = format!(
            "{}.{}.{}",
            b64_json(&json!({"typ": "JWT", "alg": "RS256", "kid": "pc-emulator"})),
            b64_json(&claims),
            random_b64(64)
        );
        self.access_tokens.insert(
            access_token.clone(),
            AccessToken {
                resource: grant.resource,
                expires: now + self.access_lifetime,
                forced_expired: false,
                uses: 0,
            },
        );
        let refresh_token = grant.has("offline_access").then(|| {
            let token = format!("1.AQ{}", random_b64(180));
            self.refresh_tokens.insert(
                token.clone(),
                RefreshToken {
                    grant: grant.clone(),
                    issued_ticks: now_ticks,
                    last_used: now,
                    revoked: false,
                    superseded: false,
                },
            );
            token
        });
        let id_token = grant.has("openid").then(|| {
            let payload = json!({
                "aud": self.client_id,
                "iss": format!("{}/{}/v2.0", self.base_url, self.tenant_id),
                "iat": iat, "nbf": iat, "exp": iat + 3600,
                "name": self.user.name, "oid": self.user.oid,
                "preferred_username": self.user.username,
                "sub": random_b64(32), "tid": self.tenant_id, "ver": "2.0",
            });
            format!(
                "{}.{}.",
                b64_json(&json!({"typ": "JWT", "alg": "none"})),
                b64_json(&payload)
            )
        });
        let client_info =
            client_info.then(|| b64_json(&json!({"uid": self.user.oid, "utid": self.tenant_id})));
        TokenResponse {
            token_type: "Bearer".into(),
            scope: grant.response_scope(),
            expires_in: lifetime,
            ext_expires_in: lifetime,
            access_token,
            refresh_token,
            id_token,
            client_info,
        }
    }

    /// Mints what a completed sign-in returns, without the flow (for cache fixtures).
    pub fn issue_full(&mut self, now: Instant) -> TokenResponse {
        self.mint(&Grant::full(), true, now)
    }

    /// Checks the `Authorization` header of an API request and counts the token's use.
    pub fn check_access(
        &mut self,
        authorization: Option<&str>,
        expire_after: Option<u32>,
        now: Instant,
    ) -> AccessCheck {
        let Some(token) = authorization.and_then(|h| {
            let (scheme, token) = h.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        }) else {
            return AccessCheck::Missing;
        };
        let Some(record) = self.access_tokens.get_mut(token) else {
            return AccessCheck::Unknown;
        };
        if record.forced_expired || now >= record.expires {
            return AccessCheck::Expired;
        }
        if record.resource != Resource::PartnerCenter {
            return AccessCheck::WrongAudience;
        }
        if expire_after.is_some_and(|limit| record.uses >= limit) {
            return AccessCheck::ExpiredByFault;
        }
        record.uses += 1;
        AccessCheck::Valid
    }

    fn find_user_code(&mut self, user_code: &str) -> Option<&mut DeviceCode> {
        let wanted = user_code.trim();
        self.device_codes
            .values_mut()
            .find(|c| c.user_code.eq_ignore_ascii_case(wanted))
    }

    /// Approves a pending, unexpired code as the user would in the browser.
    pub fn set_user_decision(&mut self, user_code: &str, approve: bool, now: Instant) -> bool {
        match self.find_user_code(user_code) {
            Some(code) if code.state == DeviceState::Pending && now < code.expires => {
                code.state = if approve {
                    DeviceState::Approved
                } else {
                    DeviceState::Declined
                };
                true
            }
            _ => false,
        }
    }

    pub fn approve_all(&mut self, now: Instant) -> usize {
        let mut approved = 0;
        for code in self.device_codes.values_mut() {
            if code.state == DeviceState::Pending && now < code.expires {
                code.state = DeviceState::Approved;
                approved += 1;
            }
        }
        approved
    }

    pub fn pending_user_codes(&self, now: Instant) -> Vec<String> {
        let mut codes: Vec<String> = self
            .device_codes
            .values()
            .filter(|c| c.state == DeviceState::Pending && now < c.expires)
            .map(|c| c.user_code.clone())
            .collect();
        codes.sort();
        codes
    }

    pub fn revoke_refresh_tokens(&mut self) {
        for token in self.refresh_tokens.values_mut() {
            token.revoked = true;
        }
    }

    pub fn expire_access_tokens(&mut self) {
        for token in self.access_tokens.values_mut() {
            token.forced_expired = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_follow_the_v2_rules() {
        let g = Grant::parse(
            "https://api.partner.microsoft.com/user_impersonation offline_access openid profile",
        )
        .expect("valid");
        assert_eq!(
            g.response_scope(),
            "https://api.partner.microsoft.com/user_impersonation openid profile offline_access"
        );
        let d = Grant::parse("https://api.partner.microsoft.com/.default").expect("valid");
        assert_eq!(
            d.response_scope(),
            "https://api.partner.microsoft.com/user_impersonation"
        );
        let two = Grant::parse(
            "https://api.partner.microsoft.com/user_impersonation https://api.partnercenter.microsoft.com/user_impersonation",
        );
        assert_eq!(two.expect_err("two resources").code, Some(700022));
        assert_eq!(
            Grant::parse("https://example.com/x")
                .expect_err("unknown")
                .error,
            "invalid_resource"
        );
        assert_eq!(
            Grant::parse("https://api.partner.microsoft.com/admin")
                .expect_err("bad")
                .code,
            Some(70011)
        );
        assert_eq!(
            Grant::parse("openid").expect("oidc only").resource,
            Resource::Graph
        );
    }
}
