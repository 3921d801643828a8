//! What the API adds to stored rows so clients need not compute it: today the display
//! form of customer domains. Stored domains are ASCII (`xn--` labels for international
//! names) because that is what filters and joins compare; people read the Unicode form.

use serde::Serialize;

use crate::store::read::{Company, Referral};

/// A domain as people write it (`bücher.example` for `xn--bcher-kva.example`). A label
/// that is not valid punycode stays as stored rather than failing the response.
pub fn domain_display(ascii: &str) -> String {
    let (unicode, result) = idna::domain_to_unicode(ascii);
    if result.is_ok() {
        unicode
    } else {
        ascii.to_owned()
    }
}

/// A Referral as the API sends it.
#[derive(Serialize)]
pub struct ReferralView {
    #[serde(flatten)]
    pub referral: Referral,
    /// `customer_domain` for display; null when there is no domain.
    pub customer_domain_display: Option<String>,
}

impl From<Referral> for ReferralView {
    fn from(referral: Referral) -> Self {
        let customer_domain_display = referral.customer_domain.as_deref().map(domain_display);
        Self {
            referral,
            customer_domain_display,
        }
    }
}

/// A company as the API sends it.
#[derive(Serialize)]
pub struct CompanyView {
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
}
