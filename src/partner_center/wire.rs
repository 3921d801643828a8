//! What Partner Center sends, decoded as little as possible.
//!
//! Referrals stay raw JSON ([`RawValue`]) so the stored payload is exactly what the API
//! sent, unknown fields and odd types included; the sync extracts typed columns from it.
//! Only the envelope is decoded here.

use serde::Deserialize;
use serde_json::value::RawValue;

/// One list page: the OData envelope with its items still raw.
#[derive(Debug, Deserialize)]
pub(crate) struct WirePage {
    /// Required: a 200 without it is a broken page, retried like a transport fault.
    pub value: Vec<Box<RawValue>>,
    /// Absent, null or empty on the last page.
    #[serde(rename = "@odata.nextLink", default)]
    pub next_link: Option<String>,
}

/// Microsoft's error code and message, from whichever body shape came back:
/// `{"error":{"code","message"}}`, a gateway's `{"statusCode","message"}`, or plain text.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ErrorBody {
    pub code: Option<String>,
    pub message: String,
}

impl ErrorBody {
    pub(crate) fn parse(body: &[u8]) -> Self {
        let text = || {
            let s = String::from_utf8_lossy(body);
            let s = s.trim();
            let mut end = s.len().min(300);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s[..end].to_owned()
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
            return Self {
                code: None,
                message: text(),
            };
        };
        let str_at = |v: &serde_json::Value, key: &str| {
            v.get(key).and_then(|s| s.as_str()).map(str::to_owned)
        };
        if let Some(e) = v.get("error") {
            if let Some(code) = e.as_str() {
                return Self {
                    code: Some(code.to_owned()),
                    message: str_at(&v, "error_description").unwrap_or_default(),
                };
            }
            return Self {
                code: str_at(e, "code"),
                message: str_at(e, "message").unwrap_or_default(),
            };
        }
        match str_at(&v, "message") {
            Some(message) => Self {
                code: None,
                message,
            },
            None => Self {
                code: None,
                message: text(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_keeps_items_raw_and_reads_the_next_link() {
        let body = br#"{"@odata.count":2,"value":[{"id":"a","details":{"dealValue":"10.50"},"x":1},{"id":"b"}],"@odata.nextLink":"http://h/v1.0/referrals?$skiptoken=abc"}"#;
        let p: WirePage = serde_json::from_slice(body).expect("page");
        assert_eq!(
            p.value[0].get(),
            r#"{"id":"a","details":{"dealValue":"10.50"},"x":1}"#
        );
        assert_eq!(
            p.next_link.as_deref(),
            Some("http://h/v1.0/referrals?$skiptoken=abc")
        );
        let last: WirePage =
            serde_json::from_slice(br#"{"value":[],"@odata.nextLink":null}"#).expect("page");
        assert!(last.next_link.is_none());
        assert!(serde_json::from_slice::<WirePage>(b"{\"value\":[{\"id\":").is_err());
        assert!(serde_json::from_slice::<WirePage>(b"{\"items\":[]}").is_err());
    }

    #[test]
    fn error_bodies_of_every_shape() {
        let ms =
            ErrorBody::parse(br#"{"error":{"code":"invalidRequest","message":"Bad filter."}}"#);
        assert_eq!(
            ms,
            ErrorBody {
                code: Some("invalidRequest".into()),
                message: "Bad filter.".into()
            }
        );
        let gw =
            ErrorBody::parse(br#"{ "statusCode": 429, "message": "Rate limit is exceeded." }"#);
        assert_eq!(gw.message, "Rate limit is exceeded.");
        assert_eq!(
            ErrorBody::parse(b"<html>Bad gateway</html>").message,
            "<html>Bad gateway</html>"
        );
        assert_eq!(ErrorBody::parse(b"").message, "");
    }
}
