//! Turns the layered raw values into typed ones. Every bad value becomes a [`Problem`]
//! naming the key and where the value came from, and parsing goes on, so an operator
//! sees all mistakes at once.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use figment::value::Value;
use secrecy::SecretString;
use url::Url;

use super::{LogFormat, Problem, Source};

/// Each key's raw value from the highest layer that has one, where it came from, and the
/// problems found so far.
pub(super) struct Values {
    pub raw: BTreeMap<&'static str, Value>,
    pub sources: BTreeMap<&'static str, Source>,
    pub problems: Vec<Problem>,
}

impl Values {
    pub(crate) fn problem(&mut self, key: &str, message: String, fix: &str) {
        let source = self.sources.get(key).cloned().unwrap_or(Source::Default);
        self.problems.push(Problem::new(key, source, message, fix));
    }

    /// Strings from env and credential files, numbers or strings from TOML: all accepted
    /// as text, so a numeric-looking client id is still a string.
    fn raw_text(&mut self, key: &'static str) -> Option<String> {
        match self.raw.get(key)? {
            Value::String(_, s) => Some(s.clone()),
            Value::Num(_, n) => Some(
                n.to_u128()
                    .map(|v| v.to_string())
                    .or_else(|| n.to_i128().map(|v| v.to_string()))
                    .or_else(|| n.to_f64().map(|v| v.to_string()))
                    .unwrap_or_default(),
            ),
            Value::Bool(_, b) => Some(b.to_string()),
            other => {
                let found = other.to_actual().to_string();
                self.problem(
                    key,
                    format!("expected a single value, found {found}"),
                    "write a plain value",
                );
                None
            }
        }
    }

    pub(crate) fn text(&mut self, key: &'static str) -> Option<String> {
        self.raw_text(key)
    }

    pub(crate) fn optional_text(&mut self, key: &'static str) -> Option<Option<String>> {
        let v = self.raw_text(key)?;
        Some((!v.trim().is_empty()).then(|| v.trim().to_owned()))
    }

    pub(crate) fn secret(&mut self, key: &'static str) -> Option<Option<SecretString>> {
        let v = self.raw_text(key)?;
        Some((!v.is_empty()).then(|| SecretString::from(v)))
    }

    pub(crate) fn flag(&mut self, key: &'static str) -> Option<bool> {
        let v = self.raw_text(key)?;
        match v.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" | "" => Some(false),
            _ => {
                self.problem(key, format!("`{v}` is not a boolean"), "use true or false");
                None
            }
        }
    }

    pub(crate) fn count(&mut self, key: &'static str) -> Option<u32> {
        let v = self.raw_text(key)?;
        let n = v.trim().parse().ok();
        if n.is_none() {
            self.problem(
                key,
                format!("`{v}` is not a whole number"),
                "use a number such as 100",
            );
        }
        n
    }

    pub(crate) fn duration(&mut self, key: &'static str) -> Option<Duration> {
        let v = self.raw_text(key)?;
        match parse_duration(&v) {
            Ok(d) => Some(d),
            Err(message) => {
                self.problem(
                    key,
                    message,
                    "use seconds (600) or a duration such as 90s, 10min, 1h30m or 7d",
                );
                None
            }
        }
    }

    pub(crate) fn http_url(&mut self, key: &'static str) -> Option<Url> {
        let v = self.raw_text(key)?;
        match Url::parse(v.trim()) {
            Ok(u) if u.has_host() && matches!(u.scheme(), "http" | "https") => Some(u),
            _ => {
                self.problem(
                    key,
                    format!("`{v}` is not an absolute http(s) URL"),
                    "write it like https://host/path",
                );
                None
            }
        }
    }

    pub(crate) fn socket_addr(&mut self, key: &'static str) -> Option<SocketAddr> {
        let v = self.raw_text(key)?;
        let v = v.trim();
        let parsed = v.parse::<SocketAddr>().ok().or_else(|| {
            let (host, port) = v.rsplit_once(':')?;
            let port: u16 = port.parse().ok()?;
            (host == "localhost").then(|| SocketAddr::new(IpAddr::from([127, 0, 0, 1]), port))
        });
        if parsed.is_none() {
            self.problem(
                key,
                format!("`{v}` is not an address:port"),
                "use e.g. 127.0.0.1:8000 or 0.0.0.0:8000",
            );
        }
        parsed
    }

    pub(crate) fn path(&mut self, key: &'static str) -> Option<PathBuf> {
        let v = self.raw_text(key)?;
        if v.trim().is_empty() {
            self.problem(
                key,
                "is empty".into(),
                "give a file path, e.g. /var/lib/partner-center-sync/msal_token_cache.json",
            );
            return None;
        }
        Some(PathBuf::from(v.trim()))
    }

    pub(crate) fn log_format(&mut self, key: &'static str) -> Option<LogFormat> {
        let v = self.raw_text(key)?;
        let f = LogFormat::parse(&v);
        if f.is_none() {
            self.problem(
                key,
                format!("`{v}` is not a log format"),
                "use auto, json, pretty or journald",
            );
        }
        f
    }

    pub(crate) fn hosts(&mut self, key: &'static str) -> Option<Vec<String>> {
        let items: Vec<String> = match self.raw.get(key)? {
            Value::Array(_, items) => {
                let texts: Option<Vec<String>> = items
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect();
                let Some(texts) = texts else {
                    self.problem(
                        key,
                        "expected a list of host names".into(),
                        "write it like [\"sync.example.com\"]",
                    );
                    return None;
                };
                texts
            }
            _ => self
                .raw_text(key)?
                .split([',', ' '])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        };
        let mut hosts = Vec::new();
        let mut bad = Vec::new();
        for item in &items {
            match host_name(item) {
                Some(h) => hosts.push(h),
                None => bad.push(format!("`{item}`")),
            }
        }
        if !bad.is_empty() {
            self.problem(
                key,
                format!("not a host name: {}", bad.join(", ")),
                "list bare names such as sync.example.com: no scheme, port, path or wildcard",
            );
            return None;
        }
        Some(hosts)
    }
}

/// A host name as `Host` headers are compared: lowercase and IDNA-encoded; IPv6 in brackets.
fn host_name(s: &str) -> Option<String> {
    let s = s.trim();
    if s.is_empty() || s.contains('*') {
        return None;
    }
    url::Host::parse(s).ok().map(|h| h.to_string())
}

/// Plain seconds (`600`), or what humantime reads (`90s`, `10min`, `1h30m`, `7d`). Whole
/// seconds only: every duration is shown, and used, in seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    match humantime::parse_duration(s) {
        Ok(d) if d.subsec_nanos() == 0 => Ok(d),
        Ok(_) => Err(format!("`{s}` is not a whole number of seconds")),
        Err(_) => Err(format!("`{s}` is not a duration")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_the_usual_forms() {
        for (text, secs) in [
            ("600", 600),
            (" 600 ", 600),
            ("90s", 90),
            ("10m", 600),
            ("10min", 600),
            ("1h30m", 5400),
            ("1h 30m", 5400),
            ("24h", 86400),
            ("7d", 7 * 86400),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
        for text in ["soon", "", "-5", "1.5", "10 parsecs"] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
        assert_eq!(
            parse_duration("1500ms"),
            Err("`1500ms` is not a whole number of seconds".into())
        );
    }

    #[test]
    fn host_names_are_normalised_and_anything_else_refused() {
        assert_eq!(
            host_name(" Sync.Example.COM ").as_deref(),
            Some("sync.example.com")
        );
        assert_eq!(
            host_name("bücher.example").as_deref(),
            Some("xn--bcher-kva.example")
        );
        assert_eq!(host_name("[::1]").as_deref(), Some("[::1]"));
        for bad in [
            "",
            "*.example.com",
            "sync.example.com:443",
            "https://x.example",
            "a/b",
        ] {
            assert_eq!(host_name(bad), None, "{bad}");
        }
    }
}
