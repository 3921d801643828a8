//! Listing: the OData query of a pass, the reference's Rule for `@odata.nextLink`, and
//! the pages pulled one at a time.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use url::Url;

use super::{COLLECTION, PartnerCenterClient, PcError, RetryBudget, WirePage};

/// The OData options of a list pass.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ListQuery {
    /// `updatedDateTime ge …` for incremental passes.
    pub updated_since: Option<DateTime<Utc>>,
    pub top: u32,
}

impl ListQuery {
    /// Always `createdDateTime asc`: it never changes, so an offset-based `$skiptoken`
    /// cannot skip a referral that is updated while we page (API reference, section 7).
    fn to_query_string(&self) -> String {
        let mut q = String::new();
        if let Some(since) = self.updated_since {
            let literal = format!(
                "{}.{:07}Z",
                since.format("%Y-%m-%dT%H:%M:%S"),
                since.timestamp_subsec_nanos() / 100
            );
            q.push_str("$filter=");
            q.push_str(&encode(&format!("updatedDateTime ge {literal}")));
            q.push('&');
        }
        q.push_str("$orderby=");
        q.push_str(&encode("createdDateTime asc"));
        q.push_str(&format!("&$top={}", self.top));
        q
    }
}

/// Percent-encodes all but RFC 3986 unreserved characters (spaces as %20, never `+`).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The reference's Rule for `@odata.nextLink`: keep its query string byte for byte,
/// drop scheme, host and path, and request `{api_url}/engagements/referrals?{query}`.
/// This keeps https, never sends the token to a foreign host, and repairs the documented
/// `http://…/v1.0/referrals?…` form. Returns the URL and whether anything changed.
fn resolve_next_link(base: &str, link: &str) -> Result<(Url, String, bool), PcError> {
    let without_fragment = link.split('#').next().unwrap_or_default();
    let query = match without_fragment.split_once('?') {
        Some((_, q)) if !q.is_empty() => q,
        _ => {
            return Err(PcError::BadNextLink {
                link: link.to_owned(),
            });
        }
    };
    let resolved = format!("{}/{COLLECTION}?{query}", base.trim_end_matches('/'));
    let url = Url::parse(&resolved).map_err(|_| PcError::BadNextLink {
        link: link.to_owned(),
    })?;
    let changed = url.as_str() != link;
    Ok((url, query.to_owned(), changed))
}

impl PartnerCenterClient {
    /// Pages of the list for `query`, to be pulled with [`ReferralPages::next_page`].
    pub(crate) fn list(&self, query: &ListQuery, budget: RetryBudget) -> ReferralPages {
        let first = format!("{}/{COLLECTION}?{}", self.base, query.to_query_string());
        ReferralPages {
            client: self.clone(),
            next: Url::parse(&first).map_err(|_| first),
            seen: HashSet::new(),
            budget,
            repaired: 0,
        }
    }
}

/// One page of referrals, raw.
#[derive(Debug)]
pub(crate) struct Page {
    pub items: Vec<Box<RawValue>>,
    /// The `Date` header: the server's clock, used for the watermark.
    pub server_date: Option<DateTime<Utc>>,
    pub is_last: bool,
}

/// The state of one paging pass; pages are pulled one at a time so memory stays flat.
pub(crate) struct ReferralPages {
    client: PartnerCenterClient,
    /// The next URL to request, or the unparseable first URL.
    next: Result<Url, String>,
    /// Query strings already followed: a repeat would loop forever.
    seen: HashSet<String>,
    budget: RetryBudget,
    repaired: u32,
}

impl ReferralPages {
    /// How many nextLinks had to be rewritten by the Rule.
    pub(crate) fn repaired_links(&self) -> u32 {
        self.repaired
    }

    /// The next page, or `None` after the last.
    pub(crate) async fn next_page(&mut self) -> Result<Option<Page>, PcError> {
        let url = match &self.next {
            Ok(u) => u.clone(),
            Err(first) if first.is_empty() => return Ok(None),
            Err(first) => {
                return Err(PcError::BadNextLink {
                    link: first.clone(),
                });
            }
        };
        let fetched = self
            .client
            .send(&url, &self.budget, |body| {
                serde_json::from_slice::<WirePage>(body).map_err(|e| e.to_string())
            })
            .await?;
        let WirePage { value, next_link } = fetched.body;
        let next_link = next_link.filter(|l| !l.trim().is_empty());
        match next_link {
            None => self.next = Err(String::new()),
            Some(link) => {
                let (next, query, changed) = resolve_next_link(&self.client.base, &link)?;
                if !self.seen.insert(query.clone()) {
                    return Err(PcError::RepeatedNextLink { query });
                }
                if changed {
                    self.repaired += 1;
                    if self.repaired == 1 {
                        tracing::warn!(
                            event = "next_link_repaired",
                            link = %strip_query(&link),
                            resolved = %strip_query(next.as_str()),
                            "Partner Center sent an @odata.nextLink outside the configured API URL; following its query on the configured URL instead (further repairs this pass are logged at debug)."
                        );
                    } else {
                        tracing::debug!(event = "next_link_repaired", link = %strip_query(&link), "Repaired an @odata.nextLink.");
                    }
                }
                self.next = Ok(next);
            }
        }
        let is_last = self.next.is_err();
        Ok(Some(Page {
            items: value,
            server_date: fetched.server_date,
            is_last,
        }))
    }
}

/// Logs show where a link pointed, never its opaque continuation token.
fn strip_query(link: &str) -> &str {
    link.split('?').next().unwrap_or(link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_rule_repairs_the_documented_odd_form() {
        let base = "https://api.partner.microsoft.com/v1.0";
        let (url, query, changed) = resolve_next_link(
            base,
            "http://api.partner.microsoft.com/v1.0/referrals?$skiptoken=b3BhcXVlLTE%3D",
        )
        .expect("link");
        assert_eq!(
            url.as_str(),
            "https://api.partner.microsoft.com/v1.0/engagements/referrals?$skiptoken=b3BhcXVlLTE%3D"
        );
        assert_eq!(query, "$skiptoken=b3BhcXVlLTE%3D");
        assert!(changed);
        let good = "https://api.partner.microsoft.com/v1.0/engagements/referrals?$top=100&$skiptoken=x%2By";
        let (url, _, changed) = resolve_next_link(base, good).expect("link");
        assert_eq!(url.as_str(), good);
        assert!(!changed);
        let (url, _, changed) = resolve_next_link(
            "http://127.0.0.1:9/v1.0/",
            "https://evil.example/steal?$skiptoken=1",
        )
        .expect("link");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/v1.0/engagements/referrals?$skiptoken=1"
        );
        assert!(changed);
        assert!(matches!(
            resolve_next_link(base, "https://api.partner.microsoft.com/v1.0/referrals"),
            Err(PcError::BadNextLink { .. })
        ));
    }

    #[test]
    fn list_query_orders_by_creation_and_encodes_the_filter() {
        let q = ListQuery {
            updated_since: None,
            top: 100,
        };
        assert_eq!(
            q.to_query_string(),
            "$orderby=createdDateTime%20asc&$top=100"
        );
        let since = DateTime::parse_from_rfc3339("2025-01-15T08:02:51.12Z")
            .expect("date")
            .with_timezone(&Utc);
        let q = ListQuery {
            updated_since: Some(since),
            top: 50,
        };
        assert_eq!(
            q.to_query_string(),
            "$filter=updatedDateTime%20ge%202025-01-15T08%3A02%3A51.1200000Z&$orderby=createdDateTime%20asc&$top=50"
        );
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::resolve_next_link;

        const BASES: [&str; 3] = [
            "https://api.partner.microsoft.com/v1.0",
            "http://127.0.0.1:8123/v1.0/",
            "https://proxy.example:8443/pc/v1.0",
        ];

        /// Whatever a nextLink names, the request goes to the configured API's collection.
        fn assert_on_base(url: &url::Url, base: &str) -> Result<(), TestCaseError> {
            let base = url::Url::parse(base).expect("base parses");
            prop_assert_eq!(url.scheme(), base.scheme());
            prop_assert_eq!(url.host_str(), base.host_str());
            prop_assert_eq!(url.port_or_known_default(), base.port_or_known_default());
            prop_assert_eq!(
                url.path(),
                format!(
                    "{}/engagements/referrals",
                    base.path().trim_end_matches('/')
                )
            );
            Ok(())
        }

        proptest! {
            #[test]
            fn a_link_with_a_query_keeps_it_byte_for_byte_on_the_configured_url(
                base in prop::sample::select(BASES.to_vec()),
                scheme in prop::sample::select(vec!["http", "https", "ftp", "javascript"]),
                host in "[a-z0-9.-]{0,20}(:[0-9]{1,5})?(@[a-z.]{1,10})?",
                path in "(/[a-zA-Z0-9._~%-]{0,10}){0,4}",
                query in "[A-Za-z0-9$=&%._~+/:@!,;()*?-]{1,60}",
                fragment in proptest::option::of("[a-z0-9]{0,10}"),
            ) {
                let mut link = format!("{scheme}://{host}{path}?{query}");
                if let Some(f) = fragment {
                    link.push('#');
                    link.push_str(&f);
                }
                let (url, kept, _) = resolve_next_link(base, &link).expect("a query is enough");
                assert_on_base(&url, base)?;
                prop_assert_eq!(&kept, &query);
                prop_assert_eq!(url.query(), Some(query.as_str()));
                prop_assert_eq!(url.fragment(), None);
            }

            #[test]
            fn any_text_resolves_on_the_configured_url_or_is_refused(
                base in prop::sample::select(BASES.to_vec()),
                link in ".{0,120}",
            ) {
                match resolve_next_link(base, &link) {
                    Ok((url, _, _)) => assert_on_base(&url, base)?,
                    Err(e) => prop_assert!(
                        matches!(e, crate::partner_center::PcError::BadNextLink { .. }),
                        "{}",
                        e
                    ),
                }
            }

            #[test]
            fn a_link_without_a_query_is_refused(
                base in prop::sample::select(BASES.to_vec()),
                link in "[^?#]{0,60}(\\?)?(#.{0,10})?",
            ) {
                prop_assert!(resolve_next_link(base, &link).is_err());
            }
        }
    }
}
