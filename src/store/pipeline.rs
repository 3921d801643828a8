//! The pipeline: how many referrals and how much deal value sit in each status and
//! substatus, per currency, for a filter. PostgreSQL sums the exact `numeric` values
//! (as text), so no amount is rounded on the way and nothing is added up in Rust. Built
//! with `QueryBuilder` because the request's filter decides the `WHERE` (see `filter.rs`).

use serde::Serialize;
use sqlx::{PgPool, Postgres, QueryBuilder};

use super::filter::{ReferralFilter, push_filter};

/// Count and value of one group. `value` is the exact sum of the deal values it holds
/// (`"0"` when none has one); `valued` counts the referrals that have one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub(crate) struct Tally {
    pub count: i64,
    pub valued: i64,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub(crate) struct SubstatusTally {
    pub substatus: Option<String>,
    #[serde(flatten)]
    pub tally: Tally,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub(crate) struct StatusTally {
    pub status: Option<String>,
    #[serde(flatten)]
    pub tally: Tally,
    pub substatuses: Vec<SubstatusTally>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub(crate) struct CurrencyTally {
    pub currency: Option<String>,
    #[serde(flatten)]
    pub tally: Tally,
    pub statuses: Vec<StatusTally>,
}

/// One row of the grouping-sets query; `level` says which grouping it is.
#[derive(sqlx::FromRow)]
struct Row {
    currency: Option<String>,
    status: Option<String>,
    substatus: Option<String>,
    /// 0 for a substatus, 1 for a status total, 3 for a currency total
    /// (`GROUPING(status, substatus)`).
    level: i32,
    count: i64,
    valued: i64,
    value: String,
}

/// Lifecycle order, so the pipeline reads from left (new) to right (closed); statuses
/// Partner Center may add later follow in alphabetical order.
const STATUS_ORDER: &str = "array_position(ARRAY['New', 'Active', 'Closed'], status)";
const SUBSTATUS_ORDER: &str = "array_position(ARRAY['Pending', 'Received', 'Accepted', 'Won', \
     'Lost', 'Declined', 'Expired'], substatus)";

/// Currencies A to Z (no currency last), each with its statuses and their substatuses.
pub(crate) async fn pipeline(
    pool: &PgPool,
    filter: &ReferralFilter,
) -> Result<Vec<CurrencyTally>, sqlx::Error> {
    let mut qb = QueryBuilder::<Postgres>::new(
        "SELECT currency, status, substatus, GROUPING(status, substatus) AS level, \
         count(*) AS count, count(deal_value) AS valued, \
         coalesce(sum(deal_value), 0)::text AS value FROM partner_center_referrals",
    );
    push_filter(&mut qb, filter);
    qb.push(format!(
        " GROUP BY GROUPING SETS ((currency), (currency, status), (currency, status, substatus)) \
         ORDER BY currency ASC NULLS LAST, GROUPING(status) DESC, {STATUS_ORDER} ASC NULLS LAST, \
         status ASC NULLS LAST, GROUPING(substatus) DESC, {SUBSTATUS_ORDER} ASC NULLS LAST, \
         substatus ASC NULLS LAST"
    ));
    let rows: Vec<Row> = qb.build_query_as().fetch_all(pool).await?;
    Ok(nest(rows))
}

/// The query orders each total before its parts, so one pass nests them.
fn nest(rows: Vec<Row>) -> Vec<CurrencyTally> {
    let mut out: Vec<CurrencyTally> = Vec::new();
    for row in rows {
        let tally = Tally {
            count: row.count,
            valued: row.valued,
            value: row.value,
        };
        match row.level {
            3 => out.push(CurrencyTally {
                currency: row.currency,
                tally,
                statuses: Vec::new(),
            }),
            1 => {
                if let Some(currency) = out.last_mut() {
                    currency.statuses.push(StatusTally {
                        status: row.status,
                        tally,
                        substatuses: Vec::new(),
                    });
                }
            }
            _ => {
                if let Some(status) = out.last_mut().and_then(|c| c.statuses.last_mut()) {
                    status.substatuses.push(SubstatusTally {
                        substatus: row.substatus,
                        tally,
                    });
                }
            }
        }
    }
    out
}
