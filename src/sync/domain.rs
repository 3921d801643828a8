//! The customer's company domain, derived from the emails of the customer's contacts.
//!
//! A mailbox at a free-mail or disposable provider says nothing about the company, so
//! those domains are skipped; among the rest the most frequent wins (the first on a tie),
//! so one consultant's address does not outvote the customer's own staff.

/// Providers whose addresses belong to individuals, not companies. Small on purpose:
/// the big consumer providers cover nearly every real case.
const FREE_MAIL: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "outlook.com",
    "hotmail.com",
    "hotmail.co.uk",
    "hotmail.fr",
    "live.com",
    "live.fr",
    "msn.com",
    "yahoo.com",
    "yahoo.co.uk",
    "yahoo.fr",
    "yahoo.de",
    "ymail.com",
    "aol.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "proton.me",
    "protonmail.com",
    "pm.me",
    "gmx.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "mail.com",
    "mail.ru",
    "yandex.ru",
    "yandex.com",
    "qq.com",
    "163.com",
    "126.com",
    "zoho.com",
    "fastmail.com",
    "tutanota.com",
    "orange.fr",
    "free.fr",
    "laposte.net",
    "t-online.de",
    "libero.it",
    "naver.com",
];

/// Throwaway-address services.
const DISPOSABLE: &[&str] = &[
    "mailinator.com",
    "guerrillamail.com",
    "guerrillamail.net",
    "sharklasers.com",
    "10minutemail.com",
    "temp-mail.org",
    "tempmail.com",
    "yopmail.com",
    "trashmail.com",
    "getnada.com",
    "dispostable.com",
    "maildrop.cc",
    "throwawaymail.com",
    "mailnesia.com",
    "discard.email",
    "fakeinbox.com",
    "spamgourmet.com",
    "emailondeck.com",
    "mohmal.com",
];

/// The domain of one email address, normalised: trimmed, lower case, trailing dot
/// dropped, internationalised names in punycode. `None` for anything that is not a
/// plausible address.
fn email_domain(email: &str) -> Option<String> {
    let email = email.trim().trim_start_matches("mailto:");
    let (local, domain) = email.rsplit_once('@')?;
    if local.is_empty() {
        return None;
    }
    let domain = domain.trim().trim_end_matches('.').trim_end_matches('>');
    if domain.is_empty() {
        return None;
    }
    let ascii = idna::domain_to_ascii(domain).ok()?.to_ascii_lowercase();
    // 253: DNS's limit, which also keeps the value well inside what an index takes.
    let labels_ok = ascii.contains('.')
        && ascii.len() <= 253
        && ascii.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    labels_ok.then_some(ascii)
}

/// True for free-mail and disposable providers, subdomains included (`mx.gmail.com`).
fn is_personal_provider(domain: &str) -> bool {
    FREE_MAIL.iter().chain(DISPOSABLE).any(|p| {
        domain == *p
            || domain
                .strip_suffix(p)
                .is_some_and(|rest| rest.ends_with('.'))
    })
}

/// The company domain for a list of contact emails.
pub(crate) fn company_domain<'a>(emails: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for domain in emails
        .into_iter()
        .filter_map(email_domain)
        .filter(|d| !is_personal_provider(d))
    {
        match counts.iter_mut().find(|(d, _)| *d == domain) {
            Some((_, n)) => *n += 1,
            None => counts.push((domain, 1)),
        }
    }
    let best = counts.iter().map(|(_, n)| *n).max()?;
    counts.into_iter().find(|(_, n)| *n == best).map(|(d, _)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_normalised_and_idns_become_punycode() {
        assert_eq!(
            email_domain("  Jane.Doe@Contoso.COM. ").as_deref(),
            Some("contoso.com")
        );
        assert_eq!(
            email_domain("kurt@Bücher.example").as_deref(),
            Some("xn--bcher-kva.example")
        );
        assert_eq!(
            email_domain("a@b@fabrikam.fr").as_deref(),
            Some("fabrikam.fr")
        );
        let too_long = format!("x@{}.com", ["label"; 60].join("."));
        for bad in [
            "",
            "no-at-sign",
            "@contoso.com",
            "x@localhost",
            "x@",
            "x@exa mple.com",
            too_long.as_str(),
        ] {
            assert_eq!(email_domain(bad), None, "{bad}");
        }
    }

    #[test]
    fn personal_providers_are_skipped_and_the_majority_wins() {
        assert_eq!(company_domain(["a@gmail.com", "b@mailinator.com"]), None);
        assert_eq!(
            company_domain(["a@gmail.com", "b@Northwind.com"]).as_deref(),
            Some("northwind.com")
        );
        assert_eq!(
            company_domain(["a@partner.io", "b@northwind.com", "c@northwind.com"]).as_deref(),
            Some("northwind.com")
        );
        assert_eq!(
            company_domain(["a@first.com", "b@second.com"]).as_deref(),
            Some("first.com")
        );
        assert!(is_personal_provider("eu.mailinator.com"));
        assert!(!is_personal_provider("notgmail.com"));
    }
}
