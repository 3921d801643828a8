//! The one outbound HTTP client builder, so identity and Partner Center calls share
//! timeouts, proxy handling and the user agent.

use crate::config::Config;

/// reqwest has no default timeout: a hung connection would stall a run forever.
/// `HTTPS_PROXY`/`NO_PROXY` are honoured through reqwest's system-proxy support.
pub fn http_client(config: &Config) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(concat!("partner-center-sync/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(config.http_connect_timeout)
        .timeout(config.http_timeout)
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        .build()
}
