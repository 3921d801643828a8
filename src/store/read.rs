//! Read-only queries behind the JSON API and the web UI.
//!
//! Filters are bound parameters, never spliced text; only column names and sort
//! directions chosen from closed enums reach the SQL string. `deal_value` is read as
//! text so the exact numeric value survives (a float would round large amounts).
//!
//! The lists, the pipeline and the companies are built with `QueryBuilder`: their `WHERE`
//! and `ORDER BY` depend on which filters and sort a request sends, and the compile-time
//! macros check only fixed text. The queries with a fixed text use the macros.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};

use super::filter::{ReferralFilter, like_pattern, push_filter};

/// The list columns; `deal_value` as exact text.
const REFERRAL_COLUMNS: &str = "id, engagement_id, name, status, substatus, type, qualification, direction, \
     customer_name, customer_country, customer_domain, deal_value::text AS deal_value, currency, \
     created_at, updated_at, first_seen_at, last_seen_at, missing_since";

#[derive(Clone, Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub(crate) struct Referral {
    pub id: String,
    pub engagement_id: Option<String>,
    pub name: Option<String>,
    pub status: Option<String>,
    pub substatus: Option<String>,
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub kind: Option<String>,
    pub qualification: Option<String>,
    pub direction: Option<String>,
    pub customer_name: Option<String>,
    pub customer_country: Option<String>,
    pub customer_domain: Option<String>,
    pub deal_value: Option<String>,
    pub currency: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub missing_since: Option<DateTime<Utc>>,
}

/// The payload fields the list can show besides the columns, in the payload's own shape
/// (a subset of it), so one reader in `http` serves the list and the full detail payload.
const LIST_PAYLOAD: &str = "jsonb_strip_nulls(jsonb_build_object(\
     'expirationDateTime', payload->'expirationDateTime', 'closedDateTime', payload->'closedDateTime', \
     'details', jsonb_build_object('closingDateTime', payload#>'{details,closingDateTime}'), \
     'team', payload->'team', 'links', jsonb_build_object('self', payload#>'{links,self}'))) AS payload";

/// A list row: the columns and the `LIST_PAYLOAD` subset of the payload.
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct ListedReferral {
    #[sqlx(flatten)]
    pub referral: Referral,
    pub payload: serde_json::Value,
}

/// One referral with what only the detail view needs.
#[derive(Clone, Debug)]
pub(crate) struct ReferralDetail {
    pub referral: Referral,
    pub etag: Option<String>,
    pub payload: serde_json::Value,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum ReferralSort {
    #[default]
    UpdatedAt,
    CreatedAt,
    Name,
    CustomerName,
    DealValue,
    Status,
}

impl ReferralSort {
    pub(crate) const NAMES: &'static [&'static str] = &[
        "updated_at",
        "created_at",
        "name",
        "customer_name",
        "deal_value",
        "status",
    ];

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "updated_at" => Self::UpdatedAt,
            "created_at" => Self::CreatedAt,
            "name" => Self::Name,
            "customer_name" => Self::CustomerName,
            "deal_value" => Self::DealValue,
            "status" => Self::Status,
            _ => return None,
        })
    }

    /// Qualified, because a bare `deal_value` in ORDER BY would mean the text output column.
    fn column(self) -> &'static str {
        match self {
            Self::UpdatedAt => "partner_center_referrals.updated_at",
            Self::CreatedAt => "partner_center_referrals.created_at",
            Self::Name => "partner_center_referrals.name",
            Self::CustomerName => "partner_center_referrals.customer_name",
            Self::DealValue => "partner_center_referrals.deal_value",
            Self::Status => "partner_center_referrals.status",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum SortOrder {
    Asc,
    #[default]
    Desc,
}

impl SortOrder {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "asc" => Some(Self::Asc),
            "desc" => Some(Self::Desc),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Asc => "asc",
            Self::Desc => "desc",
        }
    }
}

/// Position after the last row of a page sorted by `updated_at`, with `id` as the
/// tie-break. Opaque to clients: base64url of `v1|order|timestamp|id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub order: SortOrder,
    pub updated_at: Option<DateTime<Utc>>,
    pub id: String,
}

impl Cursor {
    pub(crate) fn encode(&self) -> String {
        let ts = self
            .updated_at
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true))
            .unwrap_or_default();
        URL_SAFE_NO_PAD.encode(format!("v1|{}|{ts}|{}", self.order.as_str(), self.id))
    }

    pub(crate) fn decode(s: &str) -> Option<Self> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
        let mut parts = raw.splitn(4, '|');
        if parts.next()? != "v1" {
            return None;
        }
        let order = SortOrder::parse(parts.next()?)?;
        let ts = parts.next()?;
        let updated_at = if ts.is_empty() {
            None
        } else {
            Some(DateTime::parse_from_rfc3339(ts).ok()?.with_timezone(&Utc))
        };
        let id = parts.next()?.to_owned();
        Some(Self {
            order,
            updated_at,
            id,
        })
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Paging {
    Offset(i64),
    /// Keyset paging; only valid with [`ReferralSort::UpdatedAt`].
    After(Cursor),
}

#[derive(Clone, Debug)]
pub(crate) struct ReferralQuery {
    pub filter: ReferralFilter,
    pub sort: ReferralSort,
    pub order: SortOrder,
    pub limit: i64,
    pub paging: Paging,
}

#[derive(Clone, Debug)]
pub(crate) struct ReferralPage {
    pub items: Vec<ListedReferral>,
    /// Rows matching the filter, regardless of paging.
    pub total: i64,
    /// Set when sorted by `updated_at` and more rows follow.
    pub next_cursor: Option<Cursor>,
}

/// Rows strictly after `c` in the order `updated_at {order}, id {reverse order}`, which is
/// the `(updated_at DESC, id)` index scanned forwards or backwards. Postgres puts NULLs
/// first in DESC and last in ASC, hence the NULL branches.
fn push_after(qb: &mut QueryBuilder<Postgres>, c: &Cursor) {
    match (c.order, c.updated_at) {
        (SortOrder::Desc, Some(t)) => {
            qb.push(" AND (updated_at < ")
                .push_bind(t)
                .push(" OR (updated_at = ")
                .push_bind(t)
                .push(" AND id > ")
                .push_bind(c.id.clone())
                .push("))");
        }
        (SortOrder::Desc, None) => {
            qb.push(" AND (updated_at IS NOT NULL OR id > ")
                .push_bind(c.id.clone())
                .push(")");
        }
        (SortOrder::Asc, Some(t)) => {
            qb.push(" AND (updated_at IS NULL OR updated_at > ")
                .push_bind(t)
                .push(" OR (updated_at = ")
                .push_bind(t)
                .push(" AND id < ")
                .push_bind(c.id.clone())
                .push("))");
        }
        (SortOrder::Asc, None) => {
            qb.push(" AND updated_at IS NULL AND id < ")
                .push_bind(c.id.clone());
        }
    }
}

fn push_order(qb: &mut QueryBuilder<Postgres>, sort: ReferralSort, order: SortOrder) {
    let column = sort.column();
    match (sort, order) {
        (ReferralSort::UpdatedAt, SortOrder::Desc) => qb.push(" ORDER BY updated_at DESC, id ASC"),
        (ReferralSort::UpdatedAt, SortOrder::Asc) => qb.push(" ORDER BY updated_at ASC, id DESC"),
        // Amounts in different currencies do not compare: group by currency first.
        (ReferralSort::DealValue, order) => qb.push(format!(
            " ORDER BY currency ASC NULLS LAST, {column} {} NULLS LAST, id ASC",
            order.as_str()
        )),
        (_, order) => qb.push(format!(
            " ORDER BY {column} {} NULLS LAST, id ASC",
            order.as_str()
        )),
    };
}

pub(crate) async fn referrals(
    pool: &PgPool,
    q: &ReferralQuery,
) -> Result<ReferralPage, sqlx::Error> {
    let mut count = QueryBuilder::<Postgres>::new("SELECT count(*) FROM partner_center_referrals");
    push_filter(&mut count, &q.filter);
    let total: i64 = count.build_query_scalar().fetch_one(pool).await?;

    let mut list = QueryBuilder::<Postgres>::new(format!(
        "SELECT {REFERRAL_COLUMNS}, {LIST_PAYLOAD} FROM partner_center_referrals"
    ));
    push_filter(&mut list, &q.filter);
    if let Paging::After(cursor) = &q.paging {
        push_after(&mut list, cursor);
    }
    push_order(&mut list, q.sort, q.order);
    // One extra row tells whether a next page exists without a second query.
    list.push(" LIMIT ").push_bind(q.limit + 1);
    if let Paging::Offset(offset) = q.paging {
        list.push(" OFFSET ").push_bind(offset);
    }
    let mut items: Vec<ListedReferral> = list.build_query_as().fetch_all(pool).await?;
    let more = items.len() as i64 > q.limit;
    items.truncate(usize::try_from(q.limit).unwrap_or(0));
    let next_cursor = match (more, q.sort, items.last()) {
        (true, ReferralSort::UpdatedAt, Some(last)) => Some(Cursor {
            order: q.order,
            updated_at: last.referral.updated_at,
            id: last.referral.id.clone(),
        }),
        _ => None,
    };
    Ok(ReferralPage {
        items,
        total,
        next_cursor,
    })
}

/// Every row matching a filter, in list order, for exports that must not hold them all:
/// [`Matching::rows`] streams them from one query, so memory stays flat however many match.
pub(crate) struct Matching(QueryBuilder<Postgres>);

impl Matching {
    pub(crate) fn new(filter: &ReferralFilter, sort: ReferralSort, order: SortOrder) -> Self {
        let mut qb = QueryBuilder::<Postgres>::new(format!(
            "SELECT {REFERRAL_COLUMNS}, {LIST_PAYLOAD} FROM partner_center_referrals"
        ));
        push_filter(&mut qb, filter);
        push_order(&mut qb, sort, order);
        Self(qb)
    }

    /// The rows as PostgreSQL sends them; `conn` is busy until the stream ends or is dropped.
    pub(crate) fn rows<'a>(
        &'a mut self,
        conn: &'a mut PgConnection,
    ) -> impl futures::Stream<Item = Result<ListedReferral, sqlx::Error>> + Send + 'a {
        self.0.build_query_as().fetch(conn)
    }
}

/// Referrals Partner Center still returns, counted by status (`""` for none), for the
/// `partner_center_sync_referrals` gauge.
pub(crate) async fn counts_by_status(pool: &PgPool) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT coalesce(status, '') AS "status!", count(*) AS "count!" FROM partner_center_referrals
           WHERE missing_since IS NULL GROUP BY 1 ORDER BY 1"#,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.status, r.count)).collect())
}

pub(crate) async fn referral(
    pool: &PgPool,
    id: &str,
) -> Result<Option<ReferralDetail>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT id, engagement_id, name, status, substatus, type, qualification, direction,
                  customer_name, customer_country, customer_domain, deal_value::text AS deal_value,
                  currency, created_at, updated_at, first_seen_at, last_seen_at, missing_since,
                  etag, payload
           FROM partner_center_referrals WHERE id = $1"#,
        id,
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| ReferralDetail {
        referral: Referral {
            id: r.id,
            engagement_id: r.engagement_id,
            name: r.name,
            status: r.status,
            substatus: r.substatus,
            kind: r.r#type,
            qualification: r.qualification,
            direction: r.direction,
            customer_name: r.customer_name,
            customer_country: r.customer_country,
            customer_domain: r.customer_domain,
            deal_value: r.deal_value,
            currency: r.currency,
            created_at: r.created_at,
            updated_at: r.updated_at,
            first_seen_at: r.first_seen_at,
            last_seen_at: r.last_seen_at,
            missing_since: r.missing_since,
        },
        etag: r.etag,
        payload: r.payload,
    }))
}

#[derive(Clone, Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub(crate) struct Company {
    pub domain: String,
    pub name: Option<String>,
    pub referral_count: i32,
    pub latest_status: Option<String>,
    pub latest_referral_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct CompanyQuery {
    /// Only companies with at least one referral.
    pub with_referrals: bool,
    /// Case-insensitive substring of the domain or the name, taken literally.
    pub text: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

fn push_company_filter(qb: &mut QueryBuilder<Postgres>, q: &CompanyQuery) {
    qb.push(" WHERE true");
    if q.with_referrals {
        qb.push(" AND referral_count > 0");
    }
    if let Some(text) = &q.text {
        let pattern = like_pattern(text);
        qb.push(" AND (domain ILIKE ")
            .push_bind(pattern.clone())
            .push(" OR name ILIKE ")
            .push_bind(pattern)
            .push(")");
    }
}

/// Companies with the most referrals first; returns the page and the total.
pub(crate) async fn companies(
    pool: &PgPool,
    q: &CompanyQuery,
) -> Result<(Vec<Company>, i64), sqlx::Error> {
    let mut count = QueryBuilder::<Postgres>::new("SELECT count(*) FROM partner_center_companies");
    push_company_filter(&mut count, q);
    let total: i64 = count.build_query_scalar().fetch_one(pool).await?;

    let mut list = QueryBuilder::<Postgres>::new(
        "SELECT domain, name, referral_count, latest_status, latest_referral_at FROM partner_center_companies",
    );
    push_company_filter(&mut list, q);
    list.push(
        " ORDER BY referral_count DESC, latest_referral_at DESC NULLS LAST, domain ASC LIMIT ",
    )
    .push_bind(q.limit)
    .push(" OFFSET ")
    .push_bind(q.offset);
    let items = list.build_query_as().fetch_all(pool).await?;
    Ok((items, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor {
            order: SortOrder::Desc,
            updated_at: Some(
                DateTime::parse_from_rfc3339("2025-01-15T08:02:51.123456Z")
                    .unwrap()
                    .with_timezone(&Utc),
            ),
            id: "3c9a|x".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        let none = Cursor {
            order: SortOrder::Asc,
            updated_at: None,
            id: "a".into(),
        };
        assert_eq!(Cursor::decode(&none.encode()), Some(none));
        assert_eq!(Cursor::decode("not a cursor"), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("v2|desc||a")), None);
    }
}
