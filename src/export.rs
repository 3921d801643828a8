//! Referral exports: CSV for spreadsheets and JSON lines for scripts, one row per
//! referral as the API presents it (`ReferralView`), shared by the download
//! `GET …/referrals.csv` and `partner-center-sync export`.
//!
//! The CSV is written for Excel: UTF-8 behind a byte-order mark (without it Excel reads
//! the file in the local code page and mangles every accent), RFC 4180 quoting (the `csv`
//! crate), dates in ISO 8601 UTC, and the amount and its currency in two columns so the
//! amounts stay numbers a spreadsheet can add up.
//!
//! Text cells that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`,
//! a tab or a carriage return) get a leading `'`, which Excel and LibreOffice show as
//! text: a referral named `=HYPERLINK(…)` must not become a live link in someone's sheet.
//! `deal_value` is left alone: it is PostgreSQL's rendering of a `numeric`, so it can
//! only be digits, a point and a leading minus, and a negative amount must stay a number.

use std::borrow::Cow;
use std::io::{self, Write};

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use sqlx::PgConnection;

use crate::http::present::ReferralView;
use crate::store::read::Matching;

/// Makes Excel read the file as UTF-8.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Bytes gathered before they are written out: large enough that per-write costs vanish,
/// small enough that memory stays flat and the first bytes leave at once.
pub(crate) const CHUNK: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Csv,
    /// JSON lines: one API row per line.
    Jsonl,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ExportError {
    #[error(
        "Reading the referrals from PostgreSQL failed: {0}. Check that the database is reachable and try again."
    )]
    Query(#[from] sqlx::Error),
    #[error("Writing the export failed: {0}")]
    Write(#[from] io::Error),
}

/// Writes every row of `query` to `out`, a [`CHUNK`] at a time, so memory stays flat
/// however many referrals match; returns how many were written.
pub(crate) async fn write_all(
    conn: &mut PgConnection,
    query: &mut Matching,
    format: Format,
    out: &mut impl Write,
) -> Result<u64, ExportError> {
    let mut csv = match format {
        Format::Csv => Some(CsvChunks::new()?),
        Format::Jsonl => None,
    };
    let mut lines = Vec::new();
    let mut rows = query.rows(conn);
    let mut count = 0;
    while let Some(row) = rows.try_next().await? {
        let view = ReferralView::new(row.referral, &row.payload);
        match &mut csv {
            Some(csv) => {
                csv.push(&view)?;
                if csv.len() >= CHUNK {
                    out.write_all(&csv.take()?)?;
                }
            }
            None => {
                json_line(&view, &mut lines)?;
                if lines.len() >= CHUNK {
                    out.write_all(&lines)?;
                    lines.clear();
                }
            }
        }
        count += 1;
    }
    if let Some(csv) = &mut csv {
        out.write_all(&csv.take()?)?;
    }
    out.write_all(&lines)?;
    out.flush()?;
    Ok(count)
}

/// The CSV columns, in order; `cells` fills them.
pub const CSV_COLUMNS: [&str; 23] = [
    "id",
    "name",
    "status",
    "substatus",
    "type",
    "qualification",
    "direction",
    "customer_name",
    "customer_country",
    "customer_domain",
    "deal_value",
    "currency",
    "created_at",
    "updated_at",
    "expires_at",
    "closed_at",
    "expected_close_at",
    "team",
    "partner_center_url",
    "engagement_id",
    "first_seen_at",
    "last_seen_at",
    "missing_since",
];

/// CSV text, gathered a chunk at a time: push rows, take the bytes when enough have
/// accumulated. The first chunk starts with the byte-order mark and the header row.
pub(crate) struct CsvChunks {
    writer: csv::Writer<Vec<u8>>,
}

impl CsvChunks {
    pub(crate) fn new() -> io::Result<Self> {
        let mut writer = csv::Writer::from_writer(BOM.to_vec());
        writer.write_record(CSV_COLUMNS)?;
        Ok(Self { writer })
    }

    pub(crate) fn push(&mut self, r: &ReferralView) -> io::Result<()> {
        Ok(self
            .writer
            .write_record(cells(r).iter().map(|c| c.as_ref()))?)
    }

    /// Bytes ready to take (the writer's own small buffer aside).
    pub(crate) fn len(&self) -> usize {
        self.writer.get_ref().len()
    }

    /// Everything pushed since the last call, with a fresh writer for what follows.
    pub(crate) fn take(&mut self) -> io::Result<Vec<u8>> {
        let full = std::mem::replace(&mut self.writer, csv::Writer::from_writer(Vec::new()));
        full.into_inner().map_err(|e| e.into_error())
    }
}

/// One referral as a line of JSON: the API's own row shape, so scripts can switch between
/// the two freely.
fn json_line(r: &ReferralView, out: &mut Vec<u8>) -> io::Result<()> {
    serde_json::to_writer(&mut *out, r)?;
    out.push(b'\n');
    Ok(())
}

/// A text cell a spreadsheet will not evaluate.
fn text(value: &str) -> Cow<'_, str> {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{value}"))
    } else {
        Cow::Borrowed(value)
    }
}

fn opt(value: Option<&str>) -> Cow<'_, str> {
    value.map(text).unwrap_or_default()
}

fn date(value: Option<DateTime<Utc>>) -> Cow<'static, str> {
    value
        .map(|t| Cow::Owned(t.format("%Y-%m-%dT%H:%M:%SZ").to_string()))
        .unwrap_or_default()
}

fn cells(v: &ReferralView) -> [Cow<'_, str>; CSV_COLUMNS.len()] {
    let r = &v.referral;
    [
        text(&r.id),
        opt(r.name.as_deref()),
        opt(r.status.as_deref()),
        opt(r.substatus.as_deref()),
        opt(r.kind.as_deref()),
        opt(r.qualification.as_deref()),
        opt(r.direction.as_deref()),
        opt(r.customer_name.as_deref()),
        opt(r.customer_country.as_deref()),
        opt(v.customer_domain_display.as_deref()),
        r.deal_value
            .as_deref()
            .map(Cow::Borrowed)
            .unwrap_or_default(),
        opt(r.currency.as_deref()),
        date(r.created_at),
        date(r.updated_at),
        date(v.expires_at),
        date(v.closed_at),
        date(v.expected_close_at),
        Cow::Owned(text(&v.team_names.join("; ")).into_owned()),
        opt(v.partner_center_url.as_deref()),
        opt(r.engagement_id.as_deref()),
        date(Some(r.first_seen_at)),
        date(Some(r.last_seen_at)),
        date(r.missing_since),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::read::Referral;

    fn view(name: &str, value: Option<&str>) -> ReferralView {
        let t = DateTime::parse_from_rfc3339("2025-01-15T08:02:51.123456Z")
            .expect("a time")
            .with_timezone(&Utc);
        let referral = Referral {
            id: "r-1".into(),
            engagement_id: None,
            name: Some(name.into()),
            status: Some("Closed".into()),
            substatus: Some("Won".into()),
            kind: None,
            qualification: None,
            direction: None,
            customer_name: Some("@risk, \"quoted\"\nLtd".into()),
            customer_country: None,
            customer_domain: Some("xn--bcher-kva.example".into()),
            deal_value: value.map(str::to_owned),
            currency: Some("EUR".into()),
            created_at: Some(t),
            updated_at: None,
            first_seen_at: t,
            last_seen_at: t,
            missing_since: None,
        };
        ReferralView::new(referral, &serde_json::json!({}))
    }

    fn csv_of(views: &[ReferralView]) -> String {
        let mut chunks = CsvChunks::new().unwrap();
        let mut out = Vec::new();
        for v in views {
            chunks.push(v).unwrap();
            out.extend(chunks.take().unwrap());
        }
        out.extend(chunks.take().unwrap());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_csv_starts_with_a_bom_and_the_header_and_quotes_per_rfc_4180() {
        let csv = csv_of(&[view("Plain", Some("1234.50"))]);
        let body = csv.strip_prefix('\u{feff}').expect("a byte-order mark");
        let mut lines = body.split("\n");
        assert_eq!(lines.next(), Some(CSV_COLUMNS.join(",").as_str()));
        assert!(
            body.contains(
                "r-1,Plain,Closed,Won,,,,\"'@risk, \"\"quoted\"\"\nLtd\",,bücher.example,1234.50,EUR,2025-01-15T08:02:51Z,"
            ),
            "{body}"
        );
        let mut reader = csv::Reader::from_reader(body.as_bytes());
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 1);
        assert_eq!(&rows[0][7], "'@risk, \"quoted\"\nLtd");
    }

    #[test]
    fn formulas_are_neutralised_but_negative_amounts_stay_numbers() {
        for (name, cell) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("a=b", "a=b"),
        ] {
            let csv = csv_of(&[view(name, Some("-5.00"))]);
            let mut reader = csv::Reader::from_reader(&csv.as_bytes()[3..]);
            let row = reader.records().next().unwrap().unwrap();
            assert_eq!(&row[1], cell, "{name:?}");
            assert_eq!(&row[10], "-5.00");
        }
    }

    #[test]
    fn json_lines_are_the_api_rows() {
        let mut out = Vec::new();
        json_line(&view("A", None), &mut out).unwrap();
        json_line(&view("B", None), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["name"], "B");
        assert_eq!(lines[0]["customer_domain_display"], "bücher.example");
    }
}
