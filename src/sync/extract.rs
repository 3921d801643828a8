//! Typed columns extracted from a raw referral.
//!
//! The payload is stored as sent whatever happens here; a field that cannot be read
//! into its column leaves the column NULL and is reported as a problem (a `sync_errors`
//! row), because one odd referral must never stop a run. Only a referral without a
//! usable `id` cannot be stored at all.

use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use serde_json::Value;
use serde_json::value::RawValue;

use super::domain;
use crate::store::referrals::ReferralRow;

#[derive(Debug)]
pub struct Extracted {
    pub row: ReferralRow,
    /// Fields that could not be read into their column.
    pub problems: Vec<String>,
}

/// A referral that cannot be stored: no id, or not a JSON object.
#[derive(Debug)]
pub struct Unusable {
    pub id: Option<String>,
    pub reason: String,
}

pub fn extract(payload: Box<RawValue>) -> Result<Extracted, Unusable> {
    let v: Value = serde_json::from_str(payload.get()).map_err(|e| Unusable {
        id: None,
        reason: format!("not valid JSON: {e}"),
    })?;
    let Value::Object(_) = &v else {
        return Err(Unusable {
            id: None,
            reason: "not a JSON object".into(),
        });
    };
    let id = match v.get("id") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err(Unusable {
                id: None,
                reason: "has no `id`".into(),
            });
        }
    };
    let mut problems = Vec::new();
    let mut text = |pointer: &str| -> Option<String> {
        match v.pointer(pointer) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            Some(other) => {
                problems.push(format!(
                    "`{pointer}` is {} where text was expected",
                    kind_of(other)
                ));
                None
            }
        }
    };
    let engagement_id = text("/engagementId");
    let name = text("/name");
    let status = text("/status");
    let substatus = text("/substatus");
    let kind = text("/type");
    let qualification = text("/qualification");
    let direction = text("/direction");
    let customer_name = text("/customerProfile/name");
    let customer_country = text("/customerProfile/address/country");
    let currency = text("/details/currency");
    let etag = text("/eTag");
    let created_raw = text("/createdDateTime");
    let updated_raw = text("/updatedDateTime");
    let created_at = timestamp("createdDateTime", created_raw.as_deref(), &mut problems);
    let updated_at = timestamp("updatedDateTime", updated_raw.as_deref(), &mut problems);
    let deal_value = match v.pointer("/details/dealValue") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => decimal(&n.to_string()),
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => match decimal(s.trim()) {
            Some(d) => Some(d),
            None => {
                problems.push(format!("`details.dealValue` {s:?} is not a number"));
                None
            }
        },
        Some(other) => {
            problems.push(format!(
                "`details.dealValue` is {} where a number was expected",
                kind_of(other)
            ));
            None
        }
    };
    let customer_domain = domain::company_domain(contact_emails(&v).iter().map(String::as_str));
    Ok(Extracted {
        row: ReferralRow {
            id,
            engagement_id,
            name,
            status,
            substatus,
            kind,
            qualification,
            direction,
            customer_name,
            customer_country,
            customer_domain,
            deal_value,
            currency,
            created_at,
            updated_at,
            etag,
            payload,
        },
        problems,
    })
}

/// `customerProfile.team[].email`; some samples show `team` as a single object.
fn contact_emails(v: &Value) -> Vec<String> {
    let email = |m: &Value| m.get("email").and_then(Value::as_str).map(str::to_owned);
    match v.pointer("/customerProfile/team") {
        Some(Value::Array(members)) => members.iter().filter_map(email).collect(),
        Some(member @ Value::Object(_)) => email(member).into_iter().collect(),
        _ => Vec::new(),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Partner Center's 0-7 fractional digits, `Z` (an offset or none is accepted too).
/// PostgreSQL keeps microseconds; the 7th digit is truncated, never rounded, so the
/// column never claims a later time than the API gave.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    let parsed = DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").map(|n| n.and_utc()))
        .ok()?;
    parsed.with_nanosecond(parsed.nanosecond() / 1000 * 1000)
}

fn timestamp(field: &str, raw: Option<&str>, problems: &mut Vec<String>) -> Option<DateTime<Utc>> {
    let raw = raw?;
    let parsed = parse_timestamp(raw);
    if parsed.is_none() {
        problems.push(format!("`{field}` {raw:?} is not an ISO 8601 date-time"));
    }
    parsed
}

/// A plain decimal PostgreSQL's `numeric` accepts; rejects NaN, infinities, thousands
/// separators and absurd exponents (which would fail the whole batch).
fn decimal(s: &str) -> Option<String> {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = mantissa.strip_prefix(['-', '+']).unwrap_or(mantissa);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let mantissa_ok = !(int.is_empty() && frac.is_empty())
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.len() <= 3 && e.bytes().all(|b| b.is_ascii_digit())
    });
    (mantissa_ok && exponent_ok).then(|| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).expect("json")
    }

    #[test]
    fn typed_columns_come_from_the_payload_which_stays_byte_for_byte() {
        let src = r#"{"id":"3c9a","status":"New","substatus":"Pending","type":"Shared","unknownField":{"a":1},
            "createdDateTime":"2025-01-14T17:45:09.4405187Z","updatedDateTime":"2024-05-02T08:00:00Z",
            "eTag":"\"a81f\"","customerProfile":{"name":"Northwind","address":{"country":"FR"},
            "team":[{"email":"x@gmail.com"},{"email":"Jane@NorthWind.fr"}]},"details":{"dealValue":"10000","currency":"EUR"}}"#;
        let e = extract(raw(src)).expect("usable");
        assert!(e.problems.is_empty(), "{:?}", e.problems);
        let r = e.row;
        assert_eq!(r.payload.get(), src);
        assert_eq!(
            (r.id.as_str(), r.status.as_deref(), r.kind.as_deref()),
            ("3c9a", Some("New"), Some("Shared"))
        );
        assert_eq!(r.customer_domain.as_deref(), Some("northwind.fr"));
        assert_eq!(r.customer_country.as_deref(), Some("FR"));
        assert_eq!(r.deal_value.as_deref(), Some("10000"));
        assert_eq!(r.etag.as_deref(), Some("\"a81f\""));
        assert_eq!(
            r.created_at.expect("created").to_rfc3339(),
            "2025-01-14T17:45:09.440518+00:00"
        );
        assert_eq!(
            r.updated_at.expect("updated").to_rfc3339(),
            "2024-05-02T08:00:00+00:00"
        );
    }

    #[test]
    fn numeric_deal_values_and_odd_fields_are_reported_not_fatal() {
        let e = extract(raw(
            r#"{"id":"a","details":{"dealValue":45000.5},"status":null}"#,
        ))
        .expect("usable");
        assert_eq!(e.row.deal_value.as_deref(), Some("45000.5"));
        assert_eq!(e.row.status, None);
        let e = extract(raw(r#"{"id":"b","details":{"dealValue":"lots"},"updatedDateTime":"yesterday","name":{"x":1}}"#)).expect("usable");
        assert_eq!(
            (e.row.deal_value, e.row.updated_at, e.row.name),
            (None, None, None)
        );
        assert_eq!(e.problems.len(), 3, "{:?}", e.problems);
    }

    #[test]
    fn referrals_without_an_id_are_unusable() {
        assert!(extract(raw(r#"{"name":"no id"}"#)).is_err());
        assert!(extract(raw(r#"[1,2]"#)).is_err());
        assert!(extract(raw(r#"{"id":""}"#)).is_err());
    }

    #[test]
    fn decimals_postgres_accepts() {
        for ok in ["0", "-1.5", "10000", ".5", "1e3", "1.2E-4"] {
            assert!(decimal(ok).is_some(), "{ok}");
        }
        for bad in [
            "", "NaN", "Infinity", "10,000", "1e99999", "1.2.3", "-", ".",
        ] {
            assert!(decimal(bad).is_none(), "{bad}");
        }
    }
}
