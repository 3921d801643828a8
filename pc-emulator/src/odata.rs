//! OData query options of the list endpoint: `$filter`, `$orderby`, `$top`, `$skiptoken`.
//!
//! Choices where the reference is silent (documented in the README): `$top` above 100 is refused
//! with 400 rather than capped; the default order is `updatedDateTime desc`; ties break on `id`;
//! `$filter` supports `eq` on the enum-like fields and `eq/ge/gt/le/lt` on the two date fields,
//! joined by `and`, with parentheses; anything else is 400 `invalidRequest`, as a strict service
//! would answer. The skiptoken is an opaque, padded base64 offset into the ordered, filtered result
//! that also carries the filter, order and page size, because the documented nextLink carries
//! nothing else.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::dataset::Keys;
use crate::timefmt;

/// The most items a page may hold.
pub(crate) const MAX_TOP: usize = 100;

/// A 400 `invalidRequest` with this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ODataError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, ODataError> {
    Err(ODataError(message.into()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum OrderField {
    Created,
    Updated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct OrderBy {
    pub field: OrderField,
    pub descending: bool,
}

impl OrderBy {
    fn parse(text: &str) -> Result<OrderBy, ODataError> {
        let mut words = text.split_whitespace();
        let field = match words.next() {
            Some("createdDateTime") => OrderField::Created,
            Some("updatedDateTime") => OrderField::Updated,
            Some(other) => {
                return err(format!(
                    "The property '{other}' cannot be used in the $orderby query option; use createdDateTime or updatedDateTime."
                ));
            }
            None => return err("The $orderby query option is empty."),
        };
        let descending = match words.next().map(str::to_ascii_lowercase).as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => return err(format!("'{other}' is not a valid $orderby direction.")),
        };
        if words.next().is_some() || text.contains(',') {
            return err("Only one $orderby key is supported.");
        }
        Ok(OrderBy { field, descending })
    }

    fn text(&self) -> String {
        let field = match self.field {
            OrderField::Created => "createdDateTime",
            OrderField::Updated => "updatedDateTime",
        };
        format!("{field} {}", if self.descending { "desc" } else { "asc" })
    }
}

/// A string field that takes `eq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum StrField {
    Id,
    EngagementId,
    Status,
    Substatus,
    Type,
    Qualification,
    Direction,
    Country,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Cmp {
    Eq,
    Ge,
    Gt,
    Le,
    Lt,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Clause {
    Str(StrField, String),
    Time(OrderField, Cmp, i64),
}

/// A conjunction of clauses; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct Filter {
    clauses: Vec<Clause>,
}

impl Filter {
    /// Whether any clause compares `updatedDateTime`.
    pub fn uses_updated(&self) -> bool {
        self.clauses
            .iter()
            .any(|c| matches!(c, Clause::Time(OrderField::Updated, ..)))
    }

    pub fn matches(&self, keys: &Keys) -> bool {
        self.clauses.iter().all(|clause| match clause {
            Clause::Str(field, value) => {
                let actual = match field {
                    StrField::Id => return keys.id.to_string() == *value,
                    StrField::EngagementId => return keys.engagement_id.to_string() == *value,
                    StrField::Status => keys.status,
                    StrField::Substatus => keys.substatus,
                    StrField::Type => keys.kind,
                    StrField::Qualification => keys.qualification,
                    StrField::Direction => keys.direction,
                    StrField::Country => keys.country,
                };
                actual == value
            }
            Clause::Time(field, cmp, at) => {
                let t = match field {
                    OrderField::Created => keys.created,
                    OrderField::Updated => keys.updated,
                };
                match cmp {
                    Cmp::Eq => t == *at,
                    Cmp::Ge => t >= *at,
                    Cmp::Gt => t > *at,
                    Cmp::Le => t <= *at,
                    Cmp::Lt => t < *at,
                }
            }
        })
    }

    pub fn parse(text: &str) -> Result<Filter, ODataError> {
        let tokens = tokenize(text)?;
        let mut parser = Parser { tokens, pos: 0 };
        let mut clauses = Vec::new();
        parser.conjunction(&mut clauses)?;
        if let Some(token) = parser.tokens.get(parser.pos) {
            return err(format!("Syntax error at '{}' in $filter.", token.text()));
        }
        Ok(Filter { clauses })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Quoted(String),
    Word(String),
}

impl Token {
    fn text(&self) -> String {
        match self {
            Token::Open => "(".into(),
            Token::Close => ")".into(),
            Token::Quoted(s) => format!("'{s}'"),
            Token::Word(w) => w.clone(),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, ODataError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '\'' => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            value.push('\'');
                        }
                        Some('\'') => break,
                        Some(ch) => value.push(ch),
                        None => return err("Unterminated string literal in $filter."),
                    }
                }
                tokens.push(Token::Quoted(value));
            }
            _ => {
                let mut word = String::new();
                while let Some(&ch) = chars.peek() {
                    if ch.is_whitespace() || ch == '(' || ch == ')' || ch == '\'' {
                        break;
                    }
                    word.push(ch);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn peek_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn conjunction(&mut self, out: &mut Vec<Clause>) -> Result<(), ODataError> {
        self.primary(out)?;
        loop {
            if self.peek_word("and") {
                self.pos += 1;
                self.primary(out)?;
            } else if self.peek_word("or") {
                return err("The 'or' operator is not supported in $filter.");
            } else {
                return Ok(());
            }
        }
    }

    fn primary(&mut self, out: &mut Vec<Clause>) -> Result<(), ODataError> {
        match self.next() {
            Some(Token::Open) => {
                self.conjunction(out)?;
                match self.next() {
                    Some(Token::Close) => Ok(()),
                    _ => err("Missing ')' in $filter."),
                }
            }
            Some(Token::Word(field)) => {
                let op = match self.next() {
                    Some(Token::Word(op)) => op.to_ascii_lowercase(),
                    _ => return err(format!("Expected an operator after '{field}' in $filter.")),
                };
                let value = self.next().ok_or_else(|| {
                    ODataError(format!("Expected a value after '{field} {op}' in $filter."))
                })?;
                out.push(clause(&field, &op, value)?);
                Ok(())
            }
            Some(other) => err(format!("Syntax error at '{}' in $filter.", other.text())),
            None => err("The $filter query option is incomplete."),
        }
    }
}

fn clause(field: &str, op: &str, value: Token) -> Result<Clause, ODataError> {
    let time_field = match field {
        "createdDateTime" => Some(OrderField::Created),
        "updatedDateTime" => Some(OrderField::Updated),
        _ => None,
    };
    if let Some(time_field) = time_field {
        let cmp = match op {
            "eq" => Cmp::Eq,
            "ge" => Cmp::Ge,
            "gt" => Cmp::Gt,
            "le" => Cmp::Le,
            "lt" => Cmp::Lt,
            other => {
                return err(format!(
                    "The operator '{other}' is not supported on {field}."
                ));
            }
        };
        let literal = match value {
            Token::Word(w) | Token::Quoted(w) => w,
            other => return err(format!("'{}' is not a date-time.", other.text())),
        };
        let Some(at) = timefmt::parse(&literal) else {
            return err(format!(
                "'{literal}' is not an ISO 8601 date-time with a time zone."
            ));
        };
        return Ok(Clause::Time(time_field, cmp, at));
    }
    let str_field = match field {
        "id" => StrField::Id,
        "engagementId" => StrField::EngagementId,
        "status" => StrField::Status,
        "substatus" => StrField::Substatus,
        "type" => StrField::Type,
        "qualification" => StrField::Qualification,
        "direction" => StrField::Direction,
        "customerProfile/address/country" => StrField::Country,
        other => return err(format!("Filtering on '{other}' is not supported.")),
    };
    if op != "eq" {
        return err(format!(
            "The operator '{op}' is not supported on {field}; use eq."
        ));
    }
    match value {
        Token::Quoted(v) => Ok(Clause::Str(str_field, v)),
        other => err(format!(
            "'{}' must be a string in single quotes.",
            other.text()
        )),
    }
}

/// What the skiptoken carries.
#[derive(Debug, Serialize, Deserialize)]
struct SkipToken {
    /// Offset into the ordered, filtered result.
    o: usize,
    /// `$orderby` text.
    s: String,
    /// `$filter` text, empty for none.
    f: String,
    /// Page size.
    t: usize,
}

/// A fully resolved list request.
#[derive(Debug, Clone)]
pub(crate) struct ListQuery {
    pub filter: Filter,
    pub filter_text: String,
    pub order: OrderBy,
    pub top: usize,
    pub offset: usize,
}

impl ListQuery {
    /// The skiptoken for the page after this one, not yet URL-encoded.
    pub fn next_token(&self, next_offset: usize) -> String {
        let token = SkipToken {
            o: next_offset,
            s: self.order.text(),
            f: self.filter_text.clone(),
            t: self.top,
        };
        // A struct of strings and integers always serialises.
        STANDARD.encode(serde_json::to_vec(&token).unwrap_or_default())
    }

    /// Parses the raw query string of a list request.
    pub fn parse(raw: Option<&str>) -> Result<ListQuery, ODataError> {
        let mut top = None;
        let mut order = None;
        let mut filter = None;
        let mut skiptoken = None;
        let mut seen = Vec::new();
        for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            if seen.contains(&key) {
                return err(format!(
                    "The query option '{key}' was given more than once."
                ));
            }
            seen.push(key.clone());
            match key.as_ref() {
                "$top" => top = Some(value.into_owned()),
                "$orderby" => order = Some(value.into_owned()),
                "$filter" => filter = Some(value.into_owned()),
                "$skiptoken" => skiptoken = Some(value.into_owned()),
                other if other.starts_with('$') => {
                    return err(format!("The query option '{other}' is not supported."));
                }
                _ => {}
            }
        }
        let top = match top {
            None => None,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=MAX_TOP).contains(&n) => Some(n),
                _ => {
                    return err(format!(
                        "The value '{text}' of $top is invalid; it must be between 1 and {MAX_TOP}."
                    ));
                }
            },
        };
        let (offset, order_text, filter_text, top) = match skiptoken {
            None => (0, order, filter.unwrap_or_default(), top.unwrap_or(MAX_TOP)),
            Some(token) => {
                let decoded: SkipToken = STANDARD
                    .decode(token.as_bytes())
                    .ok()
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                    .ok_or_else(|| ODataError("The $skiptoken is invalid.".into()))?;
                let same_order = order
                    .as_ref()
                    .is_none_or(|o| OrderBy::parse(o).map(|o| o.text()) == Ok(decoded.s.clone()));
                let same_filter = filter.as_ref().is_none_or(|f| *f == decoded.f);
                if !same_order || !same_filter {
                    return err("The $skiptoken was issued for a different $filter or $orderby.");
                }
                (
                    decoded.o,
                    Some(decoded.s),
                    decoded.f,
                    top.unwrap_or(decoded.t),
                )
            }
        };
        let order = match order_text {
            Some(text) => OrderBy::parse(&text)?,
            None => OrderBy {
                field: OrderField::Updated,
                descending: true,
            },
        };
        let filter = if filter_text.trim().is_empty() {
            Filter::default()
        } else {
            Filter::parse(&filter_text)?
        };
        Ok(ListQuery {
            filter,
            filter_text,
            order,
            top,
            offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_supported_filter_forms() {
        let f = Filter::parse("status eq 'Active' and (direction eq 'Incoming') and updatedDateTime ge 2025-01-01T00:00:00Z")
            .expect("valid");
        assert_eq!(f.clauses.len(), 3);
        let q = Filter::parse("customerProfile/address/country eq 'TR' and createdDateTime lt '2025-01-01T00:00:00.5Z'")
            .expect("valid");
        assert_eq!(q.clauses[0], Clause::Str(StrField::Country, "TR".into()));
        let quoted = Filter::parse("substatus eq 'O''Brien'").expect("valid");
        assert_eq!(
            quoted.clauses[0],
            Clause::Str(StrField::Substatus, "O'Brien".into())
        );
    }

    #[test]
    fn refuses_what_it_does_not_support() {
        for bad in [
            "status eq 'New' or status eq 'Active'",
            "status ne 'New'",
            "team/any(t:t/email eq 'a@b.c')",
            "status eq Active",
            "updatedDateTime ge yesterday",
            "name eq 'x'",
            "(status eq 'New'",
            "status eq 'New' and",
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn top_is_capped_by_refusal_and_token_round_trips() {
        assert!(ListQuery::parse(Some("$top=101")).is_err());
        assert!(ListQuery::parse(Some("$top=0")).is_err());
        assert!(ListQuery::parse(Some("$select=id")).is_err());
        let q = ListQuery::parse(Some(
            "$top=10&$orderby=createdDateTime%20asc&$filter=status%20eq%20%27New%27",
        ))
        .expect("valid");
        let token = q.next_token(30);
        let encoded: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
        let next = ListQuery::parse(Some(&format!("$skiptoken={encoded}"))).expect("valid");
        assert_eq!(
            (next.offset, next.top, next.order, next.filter),
            (30, 10, q.order, q.filter)
        );
        let mismatch = format!("$orderby=updatedDateTime&$skiptoken={encoded}");
        assert!(ListQuery::parse(Some(&mismatch)).is_err());
    }
}
