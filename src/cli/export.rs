//! `partner-center-sync export`: every referral matching the filters on stdout, as CSV
//! (the download's format) or JSON lines (the API's rows). The filters are the HTTP API's,
//! parsed by the same code, so `--country DE --min-value 1000` selects exactly what
//! `?country=DE&min_value=1000` does.

use clap::{Args, ValueEnum};

use super::{CommandError, Exit};
use crate::config::Config;
use crate::export::{self, ExportError, Format};
use crate::http::params::{FILTER_PARAMS, Params};
use crate::store::{self, read::Matching};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum ExportFormat {
    /// For spreadsheets: UTF-8 with BOM, RFC 4180, formulas defused.
    Csv,
    /// One JSON object per line, as the API sends each referral.
    Jsonl,
}

/// One flag per API filter parameter, named alike (`min_value` is `--min-value`), so the
/// README's filter semantics hold here word for word.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    #[arg(long, value_enum, default_value = "csv")]
    pub format: ExportFormat,
    /// Status: New, Active, Closed.
    #[arg(long, value_name = "STATUS")]
    pub status: Vec<String>,
    /// Substatus: Pending, Received, Accepted, Won, Lost, Declined, Expired.
    #[arg(long, value_name = "SUBSTATUS")]
    pub substatus: Vec<String>,
    /// Type: Independent, Shared.
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Vec<String>,
    /// Direction: Incoming, Outgoing.
    #[arg(long, value_name = "DIRECTION")]
    pub direction: Vec<String>,
    /// Qualification: SalesQualified, MarketingQualified, Direct, None.
    #[arg(long, value_name = "QUALIFICATION")]
    pub qualification: Vec<String>,
    /// Customer country code (FR, DE), any case.
    #[arg(long, value_name = "CODE")]
    pub country: Vec<String>,
    /// Currency code (EUR), any case.
    #[arg(long, value_name = "CODE")]
    pub currency: Vec<String>,
    /// Exact customer domain.
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// Text in the name or the customer name.
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,
    /// Updated at or after this RFC 3339 time or date (2026-01-31).
    #[arg(long, value_name = "TIME")]
    pub updated_since: Option<String>,
    /// New referrals whose expiry falls within this many days.
    #[arg(long, value_name = "DAYS")]
    pub expiring_within_days: Option<String>,
    /// Smallest deal value, in each referral's own currency.
    #[arg(long, value_name = "AMOUNT", allow_hyphen_values = true)]
    pub min_value: Option<String>,
    /// Largest deal value, in each referral's own currency.
    #[arg(long, value_name = "AMOUNT", allow_hyphen_values = true)]
    pub max_value: Option<String>,
    /// Include referrals Partner Center no longer lists.
    #[arg(long)]
    pub include_missing: bool,
    /// Sort: updated_at (default), created_at, name, customer_name, deal_value, status.
    #[arg(long, value_name = "COLUMN")]
    pub sort: Option<String>,
    /// Order: asc or desc (default).
    #[arg(long, value_name = "ORDER")]
    pub order: Option<String>,
}

impl ExportArgs {
    /// The flags as the API's query parameters.
    fn pairs(&self) -> Vec<(String, String)> {
        let lists = [
            ("status", &self.status),
            ("substatus", &self.substatus),
            ("type", &self.kind),
            ("direction", &self.direction),
            ("qualification", &self.qualification),
            ("country", &self.country),
            ("currency", &self.currency),
        ];
        let singles = [
            ("domain", &self.domain),
            ("q", &self.search),
            ("updated_since", &self.updated_since),
            ("expiring_within_days", &self.expiring_within_days),
            ("min_value", &self.min_value),
            ("max_value", &self.max_value),
            ("sort", &self.sort),
            ("order", &self.order),
        ];
        let mut pairs: Vec<(String, String)> = lists
            .into_iter()
            .flat_map(|(name, values)| values.iter().map(move |v| (name.to_owned(), v.clone())))
            .chain(
                singles
                    .into_iter()
                    .filter_map(|(name, value)| value.clone().map(|v| (name.to_owned(), v))),
            )
            .collect();
        if self.include_missing {
            pairs.push(("include_missing".to_owned(), "true".to_owned()));
        }
        pairs
    }
}

/// The flag a query parameter comes from.
fn flag(param: &str) -> String {
    match param {
        "q" => "--search".to_owned(),
        other => format!("--{}", other.replace('_', "-")),
    }
}

pub(crate) async fn run(config: &Config, args: ExportArgs) -> Result<(), CommandError> {
    let known = [FILTER_PARAMS, &["sort", "order"]].concat();
    let usage = |e: crate::http::params::ParamError| {
        CommandError::new(
            Exit::Usage,
            format!("Invalid {}: {}", flag(&e.name), e.problem),
        )
    };
    let params = Params::from_pairs(args.pairs(), &known).map_err(usage)?;
    let filter = params.referral_filter().map_err(usage)?;
    let mut query = Matching::new(
        &filter,
        params.sort().map_err(usage)?,
        params.order().map_err(usage)?,
    );
    let format = match args.format {
        ExportFormat::Csv => Format::Csv,
        ExportFormat::Jsonl => Format::Jsonl,
    };
    let pool = store::connect(config.require_database_url()?, &config.db_schema).await?;
    let mut conn = pool.acquire().await.map_err(store::StoreError::from)?;
    let mut stdout = std::io::stdout().lock();
    match export::write_all(&mut conn, &mut query, format, &mut stdout).await {
        Ok(rows) => {
            eprintln!("Exported {rows} referral(s).");
            Ok(())
        }
        // The reader stopped early (`| head`): what it wanted was written.
        Err(ExportError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CommandError::new(Exit::Failure, e)),
    }
}
