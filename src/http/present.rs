//! What the API adds to stored rows so clients need not compute it: the display form of
//! customer domains, and the few payload fields the list shows (dates, team, link) read
//! leniently, because one odd payload must not fail a page of results.
//!
//! Stored domains are ASCII (`xn--` labels for international names) because that is what
//! filters and joins compare; people read the Unicode form.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::store::read::{Company, Referral};
use crate::sync::extract::parse_timestamp;

/// A domain as people write it (`bücher.example` for `xn--bcher-kva.example`). A label
/// that is not valid punycode stays as stored rather than failing the response.
fn domain_display(ascii: &str) -> String {
    let (unicode, result) = idna::domain_to_unicode(ascii);
    if result.is_ok() {
        unicode
    } else {
        ascii.to_owned()
    }
}

/// A Referral as the API sends it: the columns plus what is derived from them and from
/// the payload (the whole payload for the detail, the list's subset for a list row).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ReferralView {
    #[serde(flatten)]
    pub referral: Referral,
    /// `customer_domain` for display; null when there is no domain.
    pub customer_domain_display: Option<String>,
    /// When an unanswered (New) referral expires: `expirationDateTime`.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was closed: `closedDateTime`.
    pub closed_at: Option<DateTime<Utc>>,
    /// When the customer expects to close: `details.closingDateTime`.
    pub expected_close_at: Option<DateTime<Utc>>,
    /// The partner team assigned to the referral, by name (or e-mail when nameless).
    pub team_names: Vec<String>,
    /// Partner Center's own link to the referral (`links.self.uri`), when it is an https URL.
    pub partner_center_url: Option<String>,
}

impl ReferralView {
    pub(crate) fn new(referral: Referral, payload: &Value) -> Self {
        let customer_domain_display = referral.customer_domain.as_deref().map(domain_display);
        let time = |pointer: &str| {
            payload
                .pointer(pointer)
                .and_then(Value::as_str)
                .and_then(parse_timestamp)
        };
        let team_names = members(payload.get("team"))
            .into_iter()
            .filter_map(|m| m.name.or(m.email))
            .collect();
        let partner_center_url = payload
            .pointer("/links/self/uri")
            .and_then(Value::as_str)
            .filter(|uri| uri.starts_with("https://"))
            .map(str::to_owned);
        Self {
            customer_domain_display,
            expires_at: time("/expirationDateTime"),
            closed_at: time("/closedDateTime"),
            expected_close_at: time("/details/closingDateTime"),
            team_names,
            partner_center_url,
            referral,
        }
    }
}

/// A company as the API sends it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CompanyView {
    #[serde(flatten)]
    pub company: Company,
    pub domain_display: String,
}

impl From<Company> for CompanyView {
    fn from(company: Company) -> Self {
        let domain_display = domain_display(&company.domain);
        Self {
            company,
            domain_display,
        }
    }
}

/// A team member as the UI shows it; the raw member stays in `payload`.
#[derive(Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub(crate) struct Member {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub title: Option<String>,
}

/// Reads a Partner Center member list leniently: some samples send one object instead of an array.
pub(crate) fn members(value: Option<&Value>) -> Vec<Member> {
    let entries: Vec<&Value> = match value {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        _ => Vec::new(),
    };
    let text = |m: &Value, key: &str| {
        m.get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    entries
        .into_iter()
        .filter(|m| m.is_object())
        .map(|m| {
            let full = [text(m, "firstName"), text(m, "lastName")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            Member {
                name: Some(full).filter(|s| !s.is_empty()),
                email: text(m, "email"),
                phone: text(m, "phoneNumber"),
                title: text(m, "title"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punycode_labels_show_in_unicode_and_junk_stays_as_stored() {
        assert_eq!(domain_display("xn--bcher-kva.example"), "bücher.example");
        assert_eq!(domain_display("xn--mnchen-3ya.xn--p1ai"), "münchen.рф");
        assert_eq!(domain_display("plain.example"), "plain.example");
        assert_eq!(domain_display("xn--zz-.example"), "xn--zz-.example");
    }

    #[test]
    fn members_accept_an_array_or_a_single_object() {
        let list = serde_json::json!([{"firstName": "Zoë", "lastName": "O'Brien", "email": "zoe@example.com"}, "junk"]);
        assert_eq!(
            members(Some(&list)),
            vec![Member {
                name: Some("Zoë O'Brien".into()),
                email: Some("zoe@example.com".into()),
                phone: None,
                title: None
            }]
        );
        let one = serde_json::json!({"lastName": "Ng", "title": "CTO"});
        assert_eq!(members(Some(&one)).len(), 1);
        assert!(members(Some(&serde_json::json!("x"))).is_empty());
        assert!(members(None).is_empty());
    }

    fn referral() -> Referral {
        let t = DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
            .expect("a time")
            .with_timezone(&Utc);
        Referral {
            id: "r".into(),
            engagement_id: None,
            name: None,
            status: None,
            substatus: None,
            kind: None,
            qualification: None,
            direction: None,
            customer_name: None,
            customer_country: None,
            customer_domain: Some("xn--bcher-kva.example".into()),
            deal_value: None,
            currency: None,
            created_at: None,
            updated_at: None,
            first_seen_at: t,
            last_seen_at: t,
            missing_since: None,
        }
    }

    #[test]
    fn payload_fields_are_read_leniently() {
        let payload = serde_json::json!({
            "expirationDateTime": "2025-01-14T17:45:09.4405187Z",
            "closedDateTime": "not a date",
            "details": {"closingDateTime": "2025-03-01T00:00:00Z"},
            "team": [{"firstName": "Ana", "lastName": "Lopes"}, {"email": "bo@partner.example"}, {}],
            "links": {"self": {"uri": "https://api.partner.microsoft.com/v1.0/engagements/referrals/r"}},
        });
        let view = ReferralView::new(referral(), &payload);
        assert_eq!(
            view.customer_domain_display.as_deref(),
            Some("bücher.example")
        );
        assert_eq!(
            view.expires_at.map(|t| t.to_rfc3339()),
            Some("2025-01-14T17:45:09.440518+00:00".to_owned())
        );
        assert_eq!(view.closed_at, None, "junk is left out, not an error");
        assert!(view.expected_close_at.is_some());
        assert_eq!(view.team_names, ["Ana Lopes", "bo@partner.example"]);
        assert!(view.partner_center_url.is_some());

        let odd =
            serde_json::json!({"team": "x", "links": {"self": {"uri": "javascript:alert(1)"}}});
        let view = ReferralView::new(referral(), &odd);
        assert!(view.team_names.is_empty());
        assert_eq!(
            view.partner_center_url, None,
            "only https links are offered"
        );
    }
}
