//! The referral filter: one definition and one SQL rendering, shared by the list, the
//! pipeline aggregate and the exports, so every view of "the current filter" selects
//! exactly the same rows.
//!
//! Values are bound parameters, never spliced text; only column names from this file
//! reach the SQL string. Built with `QueryBuilder`, not the compile-time macros: which
//! conditions a query carries depends on the request, and the macros check fixed text.

use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};

#[derive(Clone, Debug, Default)]
pub(crate) struct ReferralFilter {
    /// Each list matches any of its values; an empty list does not filter.
    pub statuses: Vec<String>,
    pub substatuses: Vec<String>,
    pub types: Vec<String>,
    pub directions: Vec<String>,
    pub qualifications: Vec<String>,
    /// Customer countries (ISO codes), compared without regard to case.
    pub countries: Vec<String>,
    /// Currency codes, compared without regard to case.
    pub currencies: Vec<String>,
    pub domain: Option<String>,
    /// Case-insensitive substring of the name or the customer name, taken literally.
    pub text: Option<String>,
    pub updated_since: Option<DateTime<Utc>>,
    /// New (unanswered) referrals whose `expirationDateTime` falls between now and this
    /// many days from now: the ones someone must act on before Partner Center expires them.
    pub expiring_within_days: Option<u16>,
    /// Bounds on `deal_value`, inclusive, in each referral's own currency: amounts are
    /// never converted, so a bound means the same number in every currency. Referrals
    /// without a value never match a bound.
    pub min_value: Option<Amount>,
    pub max_value: Option<Amount>,
    /// Referrals Partner Center stopped listing are hidden unless asked for.
    pub include_missing: bool,
}

/// A plain decimal (`1000`, `-12.50`), checked before it reaches PostgreSQL so a bad
/// bound is the caller's error, not a failed cast in the query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Amount(String);

impl Amount {
    /// Longer input is a mistake, not an amount.
    const MAX_LEN: usize = 40;

    pub(crate) fn parse(s: &str) -> Option<Self> {
        let digits = s.strip_prefix('-').unwrap_or(s);
        let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
        let ok = s.len() <= Self::MAX_LEN
            && !int.is_empty()
            && !frac.is_empty()
            && int.bytes().all(|b| b.is_ascii_digit())
            && frac.bytes().all(|b| b.is_ascii_digit());
        ok.then(|| Self(s.to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// For ordering two bounds: rounding to a float never reverses a strict order, so
    /// `a.approx() > b.approx()` implies `a > b`.
    pub(crate) fn approx(&self) -> f64 {
        self.0.parse().unwrap_or(0.0)
    }
}

/// Escapes LIKE's wildcards so user text matches literally (backslash is Postgres' default escape).
pub(super) fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Appends ` WHERE …` for `f` to a query over `partner_center_referrals`.
pub(super) fn push_filter(qb: &mut QueryBuilder<Postgres>, f: &ReferralFilter) {
    qb.push(" WHERE true");
    if !f.include_missing {
        qb.push(" AND missing_since IS NULL");
    }
    for (column, values) in [
        ("status", &f.statuses),
        ("substatus", &f.substatuses),
        ("type", &f.types),
        ("direction", &f.directions),
        ("qualification", &f.qualifications),
    ] {
        if !values.is_empty() {
            qb.push(format!(" AND {column} = ANY("))
                .push_bind(values.clone())
                .push(")");
        }
    }
    for (column, values) in [
        ("customer_country", &f.countries),
        ("currency", &f.currencies),
    ] {
        if !values.is_empty() {
            let upper: Vec<String> = values.iter().map(|v| v.to_uppercase()).collect();
            qb.push(format!(" AND upper({column}) = ANY("))
                .push_bind(upper)
                .push(")");
        }
    }
    if let Some(domain) = &f.domain {
        qb.push(" AND customer_domain = ").push_bind(domain.clone());
    }
    if let Some(text) = &f.text {
        let pattern = like_pattern(text);
        qb.push(" AND (name ILIKE ")
            .push_bind(pattern.clone())
            .push(" OR customer_name ILIKE ")
            .push_bind(pattern)
            .push(")");
    }
    if let Some(since) = f.updated_since {
        qb.push(" AND updated_at >= ").push_bind(since);
    }
    if let Some(days) = f.expiring_within_days {
        // `partner_center_payload_timestamp` (migration 0004) reads the date as the API does and yields
        // NULL for junk, so one odd payload cannot fail the query.
        qb.push(
            " AND status = 'New' AND partner_center_payload_timestamp(payload->>'expirationDateTime') \
             BETWEEN now() AND now() + make_interval(days => ",
        )
        .push_bind(i32::from(days))
        .push(")");
    }
    if let Some(min) = &f.min_value {
        qb.push(" AND deal_value >= ")
            .push_bind(min.as_str().to_owned())
            .push("::numeric");
    }
    if let Some(max) = &f.max_value {
        qb.push(" AND deal_value <= ")
            .push_bind(max.as_str().to_owned())
            .push("::numeric");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(like_pattern(r"50%_off\"), r"%50\%\_off\\%");
    }

    #[test]
    fn amounts_are_plain_decimals() {
        for ok in ["0", "1000", "-12.50", "12345678901234.56", "0.5"] {
            assert_eq!(Amount::parse(ok).map(|a| a.0), Some(ok.to_owned()), "{ok}");
        }
        for bad in [
            "", "-", ".5", "5.", "1e3", "1,000", "NaN", "inf", "+5", " 5", "1.2.3", "--1",
        ] {
            assert_eq!(Amount::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            Amount::parse(&"9".repeat(41)),
            None,
            "absurd lengths are refused"
        );
        assert!(Amount::parse("100").unwrap().approx() > Amount::parse("99.99").unwrap().approx());
    }
}
