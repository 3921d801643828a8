//! The one outbound HTTP client builder, so identity and Partner Center calls share
//! timeouts, proxy handling, the user agent and the redirect rule.

use crate::config::Config;

/// The longest `Location` quoted in an error; a hostile one could be megabytes.
const MAX_LOCATION_CHARS: usize = 200;

/// reqwest has no default timeout: a hung connection would stall a run forever.
/// `HTTPS_PROXY`/`NO_PROXY` are honoured through reqwest's system-proxy support.
///
/// Redirects are never followed (reqwest follows ten by default): a 307 from the identity
/// service would re-send the refresh token and the client secret to wherever it points,
/// and a 302 from the API would bring another host's data into the table. A 3xx comes back
/// as a response, which the callers turn into an error naming `location`.
pub fn http_client(config: &Config) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(concat!("partner-center-sync/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(config.http_connect_timeout)
        .timeout(config.http_timeout)
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// A redirect's `Location` fit for an error message: control characters escaped, cut short.
pub(crate) fn location(headers: &reqwest::header::HeaderMap) -> String {
    let Some(value) = headers.get(reqwest::header::LOCATION) else {
        return "(no Location header)".to_owned();
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    let mut shown: String = text
        .chars()
        .take(MAX_LOCATION_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > MAX_LOCATION_CHARS {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, LOCATION};

    #[test]
    fn location_is_quoted_escaped_and_bounded() {
        let mut headers = HeaderMap::new();
        assert_eq!(location(&headers), "(no Location header)");
        headers.insert(
            LOCATION,
            HeaderValue::from_static("http://127.0.0.1:9/x?y=1"),
        );
        assert_eq!(location(&headers), "http://127.0.0.1:9/x?y=1");
        headers.insert(
            LOCATION,
            HeaderValue::from_bytes(b"http://a/\tb").expect("tab is allowed"),
        );
        assert_eq!(location(&headers), "http://a/\\tb");
        let long = format!("http://a/{}", "x".repeat(1000));
        headers.insert(LOCATION, HeaderValue::from_str(&long).expect("ascii"));
        assert_eq!(location(&headers).chars().count(), MAX_LOCATION_CHARS + 1);
    }
}
