//! Time as .NET keeps it: 100 ns ticks, printed with 0 to 7 fractional digits.
//!
//! Partner Center serialises date-times the .NET way, trailing zeros of the fraction dropped, so
//! one listing mixes `2024-05-02T08:00:00Z` and `2025-01-14T17:45:09.4405187Z`. Sorting and
//! filtering use the ticks, which equal the printed value exactly.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Datelike, Timelike};

/// Ticks per second (one tick is 100 ns).
pub const TICKS_PER_SEC: i64 = 10_000_000;

/// Now, in ticks since the Unix epoch.
pub fn now_ticks() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    since.as_secs() as i64 * TICKS_PER_SEC + i64::from(since.subsec_nanos() / 100)
}

/// Drops the fraction below `digits` decimal places (0..=7), so the printed form shows at most
/// that many digits.
pub fn truncate(ticks: i64, digits: u32) -> i64 {
    let unit = 10_i64.pow(7 - digits.min(7));
    ticks - ticks.rem_euclid(unit)
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,7}]Z`, trailing zeros of the fraction dropped.
pub fn format(ticks: i64) -> String {
    let mut out = String::with_capacity(28);
    write_to(&mut out, ticks);
    out
}

/// Appends [`format`]'s text to `out`.
pub fn write_to(out: &mut String, ticks: i64) {
    let secs = ticks.div_euclid(TICKS_PER_SEC);
    let frac = ticks.rem_euclid(TICKS_PER_SEC);
    let Some(dt) = DateTime::from_timestamp(secs, 0) else {
        out.push_str("0001-01-01T00:00:00Z");
        return;
    };
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    if frac != 0 {
        let digits = format!("{frac:07}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push('Z');
}

/// Parses an RFC 3339 date-time (any offset, any number of fractional digits) into ticks,
/// truncating below 100 ns as .NET does.
pub fn parse(text: &str) -> Option<i64> {
    let dt = DateTime::parse_from_rfc3339(text).ok()?;
    Some(dt.timestamp() * TICKS_PER_SEC + i64::from(dt.timestamp_subsec_nanos() / 100))
}

/// The `timestamp` form of Entra error bodies: `2024-05-02 08:00:00Z`.
pub fn entra_timestamp(ticks: i64) -> String {
    let secs = ticks.div_euclid(TICKS_PER_SEC);
    match DateTime::from_timestamp(secs, 0) {
        Some(dt) => dt.format("%Y-%m-%d %H:%M:%SZ").to_string(),
        None => String::from("1970-01-01 00:00:00Z"),
    }
}

/// Whole seconds since the Unix epoch, for JWT claims.
pub fn unix_secs(ticks: i64) -> i64 {
    ticks.div_euclid(TICKS_PER_SEC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_trimmed_fraction() {
        let base = parse("2025-01-14T17:45:09Z").expect("valid");
        assert_eq!(format(base), "2025-01-14T17:45:09Z");
        assert_eq!(format(base + 4_405_187), "2025-01-14T17:45:09.4405187Z");
        assert_eq!(format(base + 1_200_000), "2025-01-14T17:45:09.12Z");
    }

    #[test]
    fn parse_round_trips_format() {
        for text in [
            "2024-05-02T08:00:00Z",
            "2025-01-15T08:02:51.12Z",
            "2025-01-14T17:45:09.4405187Z",
        ] {
            assert_eq!(format(parse(text).expect("valid")), text);
        }
        assert_eq!(
            parse("2024-05-02T10:00:00+02:00"),
            parse("2024-05-02T08:00:00Z")
        );
    }

    #[test]
    fn truncate_limits_digits() {
        let t = parse("2025-01-14T17:45:09.4405187Z").expect("valid");
        assert_eq!(format(truncate(t, 0)), "2025-01-14T17:45:09Z");
        assert_eq!(format(truncate(t, 3)), "2025-01-14T17:45:09.44Z");
        assert_eq!(format(truncate(t, 7)), "2025-01-14T17:45:09.4405187Z");
    }
}
