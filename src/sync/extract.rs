//! Typed columns extracted from a raw referral, checked so that every row written can be
//! stored: one odd referral must never fail the transaction of its whole page.
//!
//! What "stored faithfully" means here:
//! - A field that cannot be read into its column (wrong type, not a number or a date,
//!   longer than an index takes) leaves the column NULL; the payload keeps the value.
//! - NUL (U+0000), which PostgreSQL stores neither in `text` nor in `jsonb` (`\u0000`),
//!   is replaced with U+FFFD wherever it occurs (values and keys, nested too), in the
//!   columns and the payload alike; the payload is then re-serialised, so only such a
//!   referral's payload differs from the bytes sent.
//! - A referral without a usable `id` (none, empty, or longer than an index takes) cannot
//!   be stored at all and is skipped.
//!
//! Each of these is reported (a `partner_center_sync_errors` row per problem, naming the field), and the
//! run goes on.

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike, Utc};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::domain;
use crate::store::referrals::ReferralRow;

/// The longest id, or value of an indexed column, stored (bytes). A btree index refuses an
/// entry over about 2.7 KB (a third of a page), which would fail the whole transaction;
/// 1000 bytes leaves room for two such columns in one index (`status, substatus`) and
/// for the id beside a timestamp. Real values are far shorter (ids are GUIDs).
const MAX_KEY_BYTES: usize = 1000;

/// How much of an id or a value a `partner_center_sync_errors` row quotes.
const SHOWN_CHARS: usize = 80;

#[derive(Debug)]
pub struct Extracted {
    pub row: ReferralRow,
    /// What could not be stored as sent; the row is stored anyway.
    pub(crate) problems: Vec<Problem>,
}

/// One field of a referral that was not stored as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    /// The field as a dotted path (`details.dealValue`).
    pub(crate) field: String,
    /// What was wrong and what was stored instead.
    pub(crate) reason: String,
}

/// A referral that cannot be stored: not a JSON object, or no usable id.
#[derive(Debug)]
pub struct Unusable {
    /// The id as far as it is known, shortened for the record.
    pub(crate) id: Option<String>,
    pub(crate) field: Option<String>,
    pub(crate) reason: String,
}

pub fn extract(payload: Box<RawValue>) -> Result<Extracted, Unusable> {
    let mut v: Value = serde_json::from_str(payload.get()).map_err(|e| Unusable {
        id: None,
        field: None,
        reason: format!("not valid JSON ({e}); the referral was skipped"),
    })?;
    let Value::Object(_) = &v else {
        return Err(Unusable {
            id: None,
            field: None,
            reason: "not a JSON object; the referral was skipped".into(),
        });
    };
    let mut problems = Vec::new();
    // JSON can only carry NUL escaped, so a payload without `\u0000` needs no walk: a
    // profile of a 100k full sync found the walk in every referral, for nothing.
    let nul = if payload.get().contains("\\u0000") {
        replace_nul(&mut v)
    } else {
        None
    };
    let payload = match nul {
        Some(fields) => {
            problems.push(Problem {
                field: fields,
                reason: "contains NUL (U+0000), which PostgreSQL cannot store; replaced with U+FFFD, the rest stored as sent".into(),
            });
            serde_json::value::to_raw_value(&v).map_err(|e| Unusable {
                id: None,
                field: None,
                reason: format!("cannot be re-serialised ({e}); the referral was skipped"),
            })?
        }
        None => payload,
    };
    let id = match v.get("id") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err(Unusable {
                id: None,
                field: Some("id".into()),
                reason: "missing or empty; the referral was skipped".into(),
            });
        }
    };
    if id.len() > MAX_KEY_BYTES {
        return Err(Unusable {
            reason: format!(
                "is {} bytes, over the {MAX_KEY_BYTES} bytes PostgreSQL can index; the referral was skipped",
                id.len()
            ),
            id: Some(shown_id(&id)),
            field: Some("id".into()),
        });
    }
    let mut text = |pointer: &str| -> Option<String> {
        match v.pointer(pointer) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            Some(other) => {
                problems.push(Problem {
                    field: dotted(pointer),
                    reason: format!(
                        "is {} where text was expected; the column is left empty",
                        kind_of(other)
                    ),
                });
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
    let status = indexable("status", status, &mut problems);
    let substatus = indexable("substatus", substatus, &mut problems);
    let kind = indexable("type", kind, &mut problems);
    let direction = indexable("direction", direction, &mut problems);
    let created_at = timestamp("createdDateTime", created_raw.as_deref(), &mut problems);
    let updated_at = timestamp("updatedDateTime", updated_raw.as_deref(), &mut problems);
    let deal_value = match v.pointer("/details/dealValue") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => decimal(&n.to_string()),
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => match decimal(s.trim()) {
            Some(d) => Some(d),
            None => {
                problems.push(Problem {
                    field: "details.dealValue".into(),
                    reason: format!("{} is not a number; the column is left empty", shown(s)),
                });
                None
            }
        },
        Some(other) => {
            problems.push(Problem {
                field: "details.dealValue".into(),
                reason: format!(
                    "is {} where a number was expected; the column is left empty",
                    kind_of(other)
                ),
            });
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

/// Replaces NUL in every string and key, nested ones too; returns the fields it was found
/// in (dotted paths, the first few), or `None` when there was none.
fn replace_nul(v: &mut Value) -> Option<String> {
    fn walk(v: &mut Value, path: &mut String, found: &mut Vec<String>) {
        match v {
            Value::String(s) if s.contains('\0') => {
                *s = s.replace('\0', "\u{FFFD}");
                found.push(path.clone());
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    walk(item, path, found);
                    path.truncate(len);
                }
            }
            Value::Object(map) => {
                if map.keys().any(|k| k.contains('\0')) {
                    let old = std::mem::take(map);
                    *map = old
                        .into_iter()
                        .map(|(k, v)| (k.replace('\0', "\u{FFFD}"), v))
                        .collect::<Map<String, Value>>();
                    found.push(if path.is_empty() {
                        "(a key)".to_owned()
                    } else {
                        format!("{path} (a key)")
                    });
                }
                for (key, item) in map.iter_mut() {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                    walk(item, path, found);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(v, &mut String::new(), &mut found);
    match found.len() {
        0 => None,
        1..=3 => Some(found.join(", ")),
        n => Some(format!("{} and {} more", found[..3].join(", "), n - 3)),
    }
}

/// A value for an indexed column, or `None` with a problem when no index would take it.
fn indexable(field: &str, value: Option<String>, problems: &mut Vec<Problem>) -> Option<String> {
    let value = value?;
    if value.len() <= MAX_KEY_BYTES {
        return Some(value);
    }
    problems.push(Problem {
        field: field.to_owned(),
        reason: format!(
            "is {} bytes, over the {MAX_KEY_BYTES} bytes an indexed column takes; the column is left empty (the payload has the value)",
            value.len()
        ),
    });
    None
}

/// An id as a `partner_center_sync_errors` row quotes it: the first characters of a long one.
pub(crate) fn shown_id(id: &str) -> String {
    match id.char_indices().nth(SHOWN_CHARS) {
        Some((end, _)) => format!("{}…", &id[..end]),
        None => id.to_owned(),
    }
}

/// A value quoted in a reason: escaped, and shortened when long.
fn shown(s: &str) -> String {
    format!("{:?}", shown_id(s))
}

/// `/details/dealValue` as `details.dealValue`.
fn dotted(pointer: &str) -> String {
    pointer.trim_start_matches('/').replace('/', ".")
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

fn timestamp(field: &str, raw: Option<&str>, problems: &mut Vec<Problem>) -> Option<DateTime<Utc>> {
    let raw = raw?;
    let reason = match parse_timestamp(raw) {
        Some(t) if (1..=9999).contains(&t.year()) => return Some(t),
        Some(_) => "is outside the years 1 to 9999",
        None => "is not an ISO 8601 date-time",
    };
    problems.push(Problem {
        field: field.to_owned(),
        reason: format!("{} {reason}; the column is left empty", shown(raw)),
    });
    None
}

/// A plain decimal PostgreSQL's `numeric` accepts; rejects NaN, infinities, thousands
/// separators, absurd exponents and absurd lengths (which would fail the whole batch).
fn decimal(s: &str) -> Option<String> {
    if s.len() > MAX_KEY_BYTES {
        return None;
    }
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

    #[test]
    fn nul_is_replaced_in_columns_payload_and_keys_and_reported() {
        let e = extract(raw(
            r#"{"id":"n\u0000","name":"Contoso\u0000 Ltd","details":{"notes":"a\\u0000b","x\u0000y":[1,"\u0000"]}}"#,
        ))
        .expect("usable");
        assert_eq!(e.row.id, "n\u{FFFD}");
        assert_eq!(e.row.name.as_deref(), Some("Contoso\u{FFFD} Ltd"));
        let payload: Value = serde_json::from_str(e.row.payload.get()).expect("json");
        assert_eq!(
            payload["details"]["notes"], "a\\u0000b",
            "an escaped backslash is no NUL"
        );
        assert_eq!(payload["details"]["x\u{FFFD}y"][1], "\u{FFFD}");
        assert_eq!(e.problems.len(), 1, "{:?}", e.problems);
        assert_eq!(e.problems[0].field, "id, name, details (a key) and 1 more");
        assert!(e.problems[0].reason.contains("U+FFFD"));
    }

    #[test]
    fn what_no_index_takes_is_skipped_or_left_empty() {
        let long_id = "i".repeat(MAX_KEY_BYTES + 1);
        let u = extract(raw(&format!(r#"{{"id":"{long_id}"}}"#))).expect_err("skipped");
        assert_eq!(u.field.as_deref(), Some("id"));
        assert_eq!(u.id.expect("shown").chars().count(), SHOWN_CHARS + 1);
        assert!(u.reason.contains("1001 bytes"), "{}", u.reason);

        let long = "s".repeat(10_240);
        let e = extract(raw(&format!(
            r#"{{"id":"a","status":"{long}","substatus":"ok","customerProfile":{{"name":"{long}"}}}}"#
        )))
        .expect("stored");
        assert_eq!(e.row.status, None);
        assert_eq!(e.row.substatus.as_deref(), Some("ok"));
        assert_eq!(
            e.row.customer_name.as_deref(),
            Some(long.as_str()),
            "not indexed: kept"
        );
        assert_eq!(e.problems.len(), 1);
        assert_eq!(e.problems[0].field, "status");
        let e = extract(raw(
            r#"{"id":"a","updatedDateTime":"+10000-01-01T00:00:00"}"#,
        ))
        .expect("stored");
        assert_eq!(e.row.updated_at, None);
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// Text as third parties type it, NUL and index-busting lengths included.
        fn text() -> impl Strategy<Value = String> {
            prop_oneof![
                4 => any::<String>(),
                2 => "[a-z\u{0}\\\\\t\n\"]{0,12}",
                1 => (MAX_KEY_BYTES - 2..MAX_KEY_BYTES + 3).prop_map(|n| "k".repeat(n)),
            ]
        }

        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                (-1e12f64..1e12).prop_map(Value::from),
                text().prop_map(Value::from),
            ];
            leaf.prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::vec((text(), inner), 0..4)
                        .prop_map(|kv| Value::Object(kv.into_iter().collect())),
                ]
            })
        }

        /// A referral: the fields the columns read, each sane or not, among random others.
        fn referral() -> impl Strategy<Value = Value> {
            let stamp = prop_oneof![
                Just(Value::from("2025-01-14T17:45:09.4405187Z")),
                Just(Value::from("0000-01-01T00:00:00Z")),
                Just(Value::from("+12345-01-01T00:00:00")),
                json(),
            ];
            let deal = prop_oneof![
                Just(Value::from("10000.50")),
                Just(Value::from("1e999")),
                (0usize..2000).prop_map(|n| Value::from("9".repeat(n))),
                json(),
            ];
            let id = prop_oneof![
                text().prop_map(Value::from),
                any::<u32>().prop_map(Value::from),
                json()
            ];
            (
                id,
                prop::collection::vec(
                    (
                        prop::sample::select(vec![
                            "name",
                            "status",
                            "substatus",
                            "type",
                            "direction",
                            "eTag",
                            "engagementId",
                            "qualification",
                        ]),
                        json(),
                    ),
                    0..6,
                ),
                stamp,
                deal,
                prop::collection::vec(text(), 0..3),
                prop::collection::vec((text(), json()), 0..3),
            )
                .prop_map(|(id, fields, updated, deal, emails, extra)| {
                    let mut m = Map::new();
                    m.insert("id".into(), id);
                    for (k, v) in fields {
                        m.insert(k.into(), v);
                    }
                    m.insert("updatedDateTime".into(), updated);
                    m.insert("details".into(), serde_json::json!({ "dealValue": deal }));
                    let team: Vec<Value> = emails
                        .into_iter()
                        .map(|e| serde_json::json!({ "email": format!("{e}@{e}.example") }))
                        .collect();
                    m.insert(
                        "customerProfile".into(),
                        serde_json::json!({ "team": team }),
                    );
                    for (k, v) in extra {
                        m.insert(k, v);
                    }
                    Value::Object(m)
                })
        }

        /// The input as it must be stored: every NUL, in values and keys, replaced.
        fn without_nul(v: &Value) -> Value {
            match v {
                Value::String(s) => Value::from(s.replace('\0', "\u{FFFD}")),
                Value::Array(a) => Value::Array(a.iter().map(without_nul).collect()),
                Value::Object(m) => Value::Object(
                    m.iter()
                        .map(|(k, v)| (k.replace('\0', "\u{FFFD}"), without_nul(v)))
                        .collect(),
                ),
                other => other.clone(),
            }
        }

        proptest! {
            #[test]
            fn every_referral_is_stored_safely_or_skipped_with_a_reason(input in referral()) {
                let text = input.to_string();
                let out = extract(RawValue::from_string(text.clone()).expect("json"));
                match out {
                    Ok(e) => {
                        let r = &e.row;
                        prop_assert!(!r.id.trim().is_empty() && r.id.len() <= MAX_KEY_BYTES);
                        let columns = [
                            Some(&r.id), r.engagement_id.as_ref(), r.name.as_ref(), r.status.as_ref(),
                            r.substatus.as_ref(), r.kind.as_ref(), r.qualification.as_ref(),
                            r.direction.as_ref(), r.customer_name.as_ref(), r.customer_country.as_ref(),
                            r.customer_domain.as_ref(), r.deal_value.as_ref(), r.currency.as_ref(),
                            r.etag.as_ref(),
                        ];
                        for c in columns.into_iter().flatten() {
                            prop_assert!(!c.contains('\0'), "NUL in a column: {c:?}");
                        }
                        for c in [&r.status, &r.substatus, &r.kind, &r.direction, &r.customer_domain, &r.deal_value] {
                            prop_assert!(c.as_ref().is_none_or(|c| c.len() <= MAX_KEY_BYTES));
                        }
                        for t in [r.created_at, r.updated_at].into_iter().flatten() {
                            prop_assert!((1..=9999).contains(&t.year()));
                        }
                        let stored: Value = serde_json::from_str(r.payload.get()).expect("payload is JSON");
                        let sent: Value = serde_json::from_str(&text).expect("json");
                        prop_assert_eq!(&stored, &without_nul(&sent));
                        if !text.contains("\\u0000") {
                            prop_assert_eq!(r.payload.get(), text.as_str(), "byte for byte");
                        }
                        for p in &e.problems {
                            prop_assert!(!p.field.is_empty() && !p.reason.is_empty());
                        }
                    }
                    Err(u) => {
                        prop_assert!(!u.reason.is_empty());
                        prop_assert!(u.id.is_none_or(|id| id.chars().count() <= SHOWN_CHARS + 1));
                        let id = input.get("id");
                        let usable = match id {
                            Some(Value::String(s)) => !s.trim().is_empty() && s.len() <= MAX_KEY_BYTES,
                            Some(Value::Number(_)) => true,
                            _ => false,
                        };
                        prop_assert!(!usable, "skipped a referral with a usable id: {id:?}");
                    }
                }
            }
        }
    }
}
