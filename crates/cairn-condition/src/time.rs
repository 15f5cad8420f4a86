//! Time helpers: ISO-8601 parsing and formatting, local calendar parts in an IANA time zone, and the next
//! instants at which a local part can change (for `next_change_after`).

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

pub(crate) const MINUTE_MS: i64 = 60_000;
pub(crate) const HOUR_MS: i64 = 3_600_000;
pub(crate) const DAY_MS: i64 = 86_400_000;
/// Every UTC offset in use today is a multiple of 15 minutes, and so is every transition: a local hour
/// can only change on this grid.
pub(crate) const QUARTER_HOUR_MS: i64 = 15 * MINUTE_MS;

/// Parses an ISO-8601 date-time (RFC 3339, with an offset or `Z`), a date-time without offset (UTC) or a
/// date (midnight UTC) into milliseconds since the epoch.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    parse_timestamp_in(text, None)
}

/// Like [`parse_timestamp`], but a date or a date-time without offset is local time in `zone`.
pub(crate) fn parse_timestamp_in(text: &str, zone: Option<Tz>) -> Option<i64> {
    let text = text.trim();
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Some(instant.timestamp_millis());
    }
    let naive = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .map(|date| date.and_time(NaiveTime::MIN))
    })?;
    match zone {
        None => Some(naive.and_utc().timestamp_millis()),
        Some(zone) => local_to_utc_ms(zone, naive),
    }
}

/// A local date-time in `zone` as UTC milliseconds: the earlier instant when the local time occurs twice,
/// and the instant the clocks jump to when it does not occur (a spring-forward gap).
pub(crate) fn local_to_utc_ms(zone: Tz, naive: NaiveDateTime) -> Option<i64> {
    match zone.from_local_datetime(&naive) {
        LocalResult::Single(instant) => Some(instant.timestamp_millis()),
        LocalResult::Ambiguous(earlier, _) => Some(earlier.timestamp_millis()),
        LocalResult::None => {
            // In a gap: walk forward on the quarter-hour grid to the first local time that exists.
            (1..=16).find_map(|quarter| {
                let later = naive + chrono::Duration::minutes(15 * quarter);
                zone.from_local_datetime(&later).earliest().map(|instant| {
                    let offset_ms = instant.timestamp_millis() - later.and_utc().timestamp_millis();
                    // The instant the gap starts, seen through the later offset.
                    naive.and_utc().timestamp_millis() + offset_ms
                })
            })
        }
    }
}

/// Formats milliseconds since the epoch as RFC 3339 UTC with milliseconds.
pub fn format_timestamp(ms: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|instant| instant.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// Parses an IANA time-zone name.
pub(crate) fn parse_zone(name: &str) -> Option<Tz> {
    name.parse::<Tz>().ok()
}

/// A calendar part of an instant in a time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LocalPart {
    Hour,
    /// ISO weekday: 1 = Monday … 7 = Sunday.
    Weekday,
    Day,
    Month,
    Year,
}

pub(crate) fn local_part(ms: i64, zone: Tz, part: LocalPart) -> Option<f64> {
    let local = DateTime::<Utc>::from_timestamp_millis(ms)?.with_timezone(&zone);
    Some(f64::from(match part {
        LocalPart::Hour => local.hour(),
        LocalPart::Weekday => local.weekday().number_from_monday(),
        LocalPart::Day => local.day(),
        LocalPart::Month => local.month(),
        LocalPart::Year => return Some(f64::from(local.year())),
    }))
}

/// The first instant after `after_ms` at which `part` may change in `zone` (never later than the real change).
pub(crate) fn next_local_change(after_ms: i64, zone: Tz, part: LocalPart) -> Option<i64> {
    let quarter = after_ms
        .div_euclid(QUARTER_HOUR_MS)
        .checked_add(1)?
        .checked_mul(QUARTER_HOUR_MS)?;
    if part == LocalPart::Hour {
        return Some(quarter);
    }
    // Day-level parts change at local midnight; fall back to the grid if midnight cannot be found.
    let local = DateTime::<Utc>::from_timestamp_millis(after_ms)?.with_timezone(&zone);
    let next_midnight = local.date_naive().succ_opt()?.and_time(NaiveTime::MIN);
    match local_to_utc_ms(zone, next_midnight) {
        Some(midnight) if midnight > after_ms => Some(midnight),
        _ => Some(quarter),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_iso_forms_found_in_traits() {
        assert_eq!(parse_timestamp("1970-01-02"), Some(DAY_MS));
        assert_eq!(parse_timestamp("1970-01-01T01:00:00Z"), Some(HOUR_MS));
        assert_eq!(parse_timestamp("1970-01-01T02:00:00+01:00"), Some(HOUR_MS));
        assert_eq!(parse_timestamp("1970-01-01T00:00:00.250Z"), Some(250));
        assert_eq!(parse_timestamp("1970-01-01T01:00:00"), Some(HOUR_MS));
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(
            format_timestamp(HOUR_MS).as_deref(),
            Some("1970-01-01T01:00:00.000Z")
        );
    }

    #[test]
    fn local_times_in_gaps_and_overlaps() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 2026-03-29 02:30 does not exist in Berlin: clocks jump from 02:00 CET to 03:00 CEST (01:00 UTC).
        let gap = NaiveDate::from_ymd_opt(2026, 3, 29)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        assert_eq!(
            local_to_utc_ms(berlin, gap),
            parse_timestamp("2026-03-29T01:00:00Z")
        );
        // 2026-10-25 02:30 occurs twice; the first (CEST, 00:30 UTC) is taken.
        let overlap = NaiveDate::from_ymd_opt(2026, 10, 25)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        assert_eq!(
            local_to_utc_ms(berlin, overlap),
            parse_timestamp("2026-10-25T00:30:00Z")
        );
    }
}
