//! Where entries live: the cache environment of an authority, MSAL's `target` form, and
//! the keys MSAL Python writes entries under (identity reference, section 4).

/// Microsoft's public-cloud identity hosts; MSAL treats them as one environment.
const PUBLIC_CLOUD_ALIASES: [&str; 4] = [
    "login.microsoftonline.com",
    "login.windows.net",
    "login.microsoft.com",
    "sts.windows.net",
];

/// The cache environment for an authority URL: its host, lower-cased, without the port
/// (MSAL Python uses `urlparse(...).hostname`), so an emulator on any port is `127.0.0.1`.
pub(crate) fn environment_of(authority: &url::Url) -> String {
    match authority.host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        Some(host) => host.to_string().to_ascii_lowercase(),
        None => String::new(),
    }
}

/// Whether two cache environments name the same cloud.
pub(crate) fn same_environment(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
        || (PUBLIC_CLOUD_ALIASES
            .iter()
            .any(|x| x.eq_ignore_ascii_case(a))
            && PUBLIC_CLOUD_ALIASES
                .iter()
                .any(|x| x.eq_ignore_ascii_case(b)))
}

/// A `target` as MSAL stores it: scopes split on whitespace, sorted, joined by one space.
pub(crate) fn normalize_target(scopes: &str) -> String {
    let mut parts: Vec<&str> = scopes.split_whitespace().collect();
    parts.sort_unstable();
    parts.join(" ")
}

fn join_key(parts: &[&str]) -> String {
    parts.join("-").to_lowercase()
}

pub(crate) fn access_token_key(
    home_account_id: &str,
    environment: &str,
    client_id: &str,
    realm: &str,
    target: &str,
) -> String {
    join_key(&[
        home_account_id,
        environment,
        "AccessToken",
        client_id,
        realm,
        target,
    ])
}

/// Refresh tokens are cross-tenant, hence the empty realm part.
pub(crate) fn refresh_token_key(
    home_account_id: &str,
    environment: &str,
    client_id: &str,
    target: &str,
) -> String {
    join_key(&[
        home_account_id,
        environment,
        "RefreshToken",
        client_id,
        "",
        target,
    ])
}

/// The trailing empty part is the (unused) target the schema requires.
pub(crate) fn id_token_key(
    home_account_id: &str,
    environment: &str,
    client_id: &str,
    realm: &str,
) -> String {
    join_key(&[
        home_account_id,
        environment,
        "IdToken",
        client_id,
        realm,
        "",
    ])
}

pub(crate) fn account_key(home_account_id: &str, environment: &str, realm: &str) -> String {
    join_key(&[home_account_id, environment, realm])
}

/// MSAL Python does not lower-case AppMetadata keys.
pub(crate) fn app_metadata_key(environment: &str, client_id: &str) -> String {
    format!("appmetadata-{environment}-{client_id}")
}
