//! Query parameters of the data endpoints, and the referral filter that the list, the
//! pipeline and the exports read from them with one parser, so a filter means the same
//! everywhere (the CLI's `export` goes through it too).
//!
//! Each endpoint names the parameters it knows, so a typo is an error rather than a
//! silently ignored filter. An empty value (`status=`) counts as absent, so HTML forms
//! can send every field.

use super::error::ApiError;
use crate::store::filter::{Amount, ReferralFilter};
use crate::store::read::{ReferralSort, SortOrder};
use crate::sync::parse_since;

/// The filters every referral endpoint takes; README and `api.rs` say what each means.
pub(crate) const FILTER_PARAMS: &[&str] = &[
    "status",
    "substatus",
    "type",
    "direction",
    "qualification",
    "country",
    "currency",
    "domain",
    "q",
    "updated_since",
    "expiring_within_days",
    "min_value",
    "max_value",
    "include_missing",
];

/// `sort` and `order` of the referral list and the CSV export.
pub(crate) const SORT_PARAMS: &[&str] = &["sort", "order"];
/// The referral list's paging.
pub(crate) const REFERRAL_PAGE_PARAMS: &[&str] = &["limit", "offset", "cursor"];
pub(crate) const COMPANY_PARAMS: &[&str] = &["with_referrals", "q", "limit", "offset"];
pub(crate) const RUN_PARAMS: &[&str] = &["limit", "offset", "status"];

/// Longest free-text search accepted; longer input is a mistake, not a search.
const MAX_TEXT: usize = 200;
/// Most values one list filter may carry.
const MAX_VALUES: usize = 50;
/// The furthest "expiring within" looks ahead; Partner Center expires New referrals
/// within weeks, so a year is already generous.
const MAX_EXPIRY_DAYS: i64 = 366;

const CONTROL_PROBLEM: &str =
    "contains a control character (such as NUL or a line break); remove it";

/// No stored value holds one, and PostgreSQL refuses NUL in text outright: such input
/// is a client's mistake (or an attack), answered before it reaches a query.
fn has_control(value: &str) -> bool {
    value.chars().any(char::is_control)
}

/// An `{id}` from the path, checked like a query value.
pub(crate) fn path_id(id: &str) -> Result<&str, ApiError> {
    if has_control(id) {
        return Err(ApiError::BadRequest(format!(
            "Invalid path parameter `id`: {CONTROL_PROBLEM}"
        )));
    }
    Ok(id)
}

/// A parameter the caller must fix, by name.
#[derive(Debug, thiserror::Error)]
#[error("Invalid query parameter `{name}`: {problem}")]
pub(crate) struct ParamError {
    pub name: String,
    pub problem: String,
}

impl ParamError {
    fn new(name: &str, problem: impl std::fmt::Display) -> Self {
        Self {
            name: name.to_owned(),
            problem: problem.to_string(),
        }
    }
}

impl From<ParamError> for ApiError {
    fn from(e: ParamError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub(crate) fn parse(raw: Option<String>, known: &[&str]) -> Result<Self, ParamError> {
        let pairs = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Self::from_pairs(pairs, known)
    }

    pub(crate) fn from_pairs(
        pairs: Vec<(String, String)>,
        known: &[&str],
    ) -> Result<Self, ParamError> {
        let pairs: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(k, v)| (k, v.trim().to_owned()))
            .collect();
        if let Some((name, _)) = pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            return Err(ParamError::new(
                name,
                format!("unknown parameter; expected one of {}", known.join(", ")),
            ));
        }
        if let Some((name, _)) = pairs.iter().find(|(_, v)| has_control(v)) {
            return Err(ParamError::new(name, CONTROL_PROBLEM));
        }
        Ok(Self { pairs })
    }

    /// A single-valued parameter; repeating it is ambiguous and refused.
    pub(crate) fn one(&self, name: &str) -> Result<Option<&str>, ParamError> {
        let mut values = self
            .pairs
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(ParamError::new(name, "given more than once"));
        }
        Ok(first)
    }

    /// Comma-separated and repeated values, merged.
    pub(crate) fn list(&self, name: &str) -> Result<Vec<String>, ParamError> {
        let values: Vec<String> = self
            .pairs
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect();
        if values.len() > MAX_VALUES {
            return Err(ParamError::new(
                name,
                format!("at most {MAX_VALUES} values are allowed"),
            ));
        }
        Ok(values)
    }

    pub(crate) fn int(
        &self,
        name: &str,
        default: i64,
        min: i64,
        max: i64,
    ) -> Result<i64, ParamError> {
        match self.one(name)? {
            None => Ok(default),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| {
                    ParamError::new(name, format!("`{v}` is not an integer from {min} to {max}"))
                }),
        }
    }

    pub(crate) fn bool(&self, name: &str) -> Result<bool, ParamError> {
        match self.one(name)? {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(v) => Err(ParamError::new(
                name,
                format!("`{v}` is not `true` or `false`"),
            )),
        }
    }

    pub(crate) fn text(&self, name: &str) -> Result<Option<String>, ParamError> {
        match self.one(name)? {
            Some(v) if v.chars().count() > MAX_TEXT => Err(ParamError::new(
                name,
                format!("longer than {MAX_TEXT} characters"),
            )),
            v => Ok(v.map(str::to_owned)),
        }
    }

    fn amount(&self, name: &str) -> Result<Option<Amount>, ParamError> {
        self.one(name)?
            .map(|v| {
                Amount::parse(v).ok_or_else(|| {
                    ParamError::new(
                        name,
                        format!("`{v}` is not a plain decimal like 1000 or 1000.50"),
                    )
                })
            })
            .transpose()
    }

    /// The [`FILTER_PARAMS`] as a filter.
    /// An RFC 3339 time or a date (midnight UTC), like `updated_since`.
    pub(crate) fn since(
        &self,
        name: &str,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, ParamError> {
        self.one(name)?
            .map(|v| parse_since(v).map_err(|e| ParamError::new(name, e.to_string())))
            .transpose()
    }

    /// A cursor this API handed out: the id of the last row seen.
    pub(crate) fn cursor(&self, name: &str) -> Result<i64, ParamError> {
        match self.one(name)? {
            None => Ok(0),
            Some(v) => v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                ParamError::new(
                    name,
                    "pass the `next_cursor` of the previous page as it was given",
                )
            }),
        }
    }

    pub(crate) fn referral_filter(&self) -> Result<ReferralFilter, ParamError> {
        let updated_since = self
            .one("updated_since")?
            .map(|v| parse_since(v).map_err(|e| ParamError::new("updated_since", e.to_string())))
            .transpose()?;
        let expiring_within_days = match self.one("expiring_within_days")? {
            None => None,
            Some(_) => u16::try_from(self.int("expiring_within_days", 0, 1, MAX_EXPIRY_DAYS)?).ok(),
        };
        let min_value = self.amount("min_value")?;
        let max_value = self.amount("max_value")?;
        if let (Some(min), Some(max)) = (&min_value, &max_value)
            && min.approx() > max.approx()
        {
            return Err(ParamError::new(
                "min_value",
                format!(
                    "`{}` is greater than max_value `{}`",
                    min.as_str(),
                    max.as_str()
                ),
            ));
        }
        Ok(ReferralFilter {
            statuses: self.list("status")?,
            substatuses: self.list("substatus")?,
            types: self.list("type")?,
            directions: self.list("direction")?,
            qualifications: self.list("qualification")?,
            countries: self.list("country")?,
            currencies: self.list("currency")?,
            domain: self.text("domain")?.map(|d| d.to_lowercase()),
            text: self.text("q")?,
            updated_since,
            expiring_within_days,
            min_value,
            max_value,
            include_missing: self.bool("include_missing")?,
        })
    }

    pub(crate) fn sort(&self) -> Result<ReferralSort, ParamError> {
        match self.one("sort")? {
            None => Ok(ReferralSort::default()),
            Some(v) => ReferralSort::parse(v).ok_or_else(|| {
                ParamError::new(
                    "sort",
                    format!("`{v}` is not one of {}", ReferralSort::NAMES.join(", ")),
                )
            }),
        }
    }

    pub(crate) fn order(&self) -> Result<SortOrder, ParamError> {
        match self.one("order")? {
            None => Ok(SortOrder::default()),
            Some(v) => SortOrder::parse(v)
                .ok_or_else(|| ParamError::new("order", format!("`{v}` is not `asc` or `desc`"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> Result<Params, ParamError> {
        Params::parse(Some(query.to_owned()), FILTER_PARAMS)
    }

    #[test]
    fn the_new_filters_parse_and_bad_values_name_their_parameter() {
        let f = params("country=fr,DE&qualification=SalesQualified&currency=eur&expiring_within_days=7&min_value=100&max_value=2500.50")
            .unwrap()
            .referral_filter()
            .unwrap();
        assert_eq!(f.countries, ["fr", "DE"]);
        assert_eq!(f.qualifications, ["SalesQualified"]);
        assert_eq!(f.currencies, ["eur"]);
        assert_eq!(f.expiring_within_days, Some(7));
        assert_eq!(f.min_value.as_ref().map(Amount::as_str), Some("100"));
        assert_eq!(f.max_value.as_ref().map(Amount::as_str), Some("2500.50"));
        for (query, name) in [
            ("expiring_within_days=0", "expiring_within_days"),
            ("expiring_within_days=367", "expiring_within_days"),
            ("expiring_within_days=soon", "expiring_within_days"),
            ("min_value=1e9", "min_value"),
            ("max_value=1,000", "max_value"),
            ("min_value=10&max_value=9.99", "min_value"),
            ("min_value=1&min_value=2", "min_value"),
            ("updated_since=yesterday", "updated_since"),
        ] {
            let e = params(query).unwrap().referral_filter().unwrap_err();
            assert_eq!(e.name, name, "{query}: {e}");
        }
        assert_eq!(
            params("countries=FR").err().map(|e| e.name).as_deref(),
            Some("countries")
        );
    }

    #[test]
    fn control_characters_in_a_value_name_their_parameter() {
        for query in ["q=a%00b", "status=New%0AX", "domain=x%1Fx", "q=a%C2%85b"] {
            let e = params(query).err().expect(query);
            assert!(e.problem.contains("control character"), "{query}: {e}");
        }
        assert!(params("q=a%09b").is_err());
        assert!(params("q=caf%C3%A9").is_ok());
        assert!(path_id("ref-1").is_ok());
        assert!(path_id(r"ref\0").is_ok());
        assert!(path_id("ref\u{0}").is_err());
    }
}
