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
    if zone.is_none() {
        if let Some(ms) = parse_common_utc(text.as_bytes()) {
            return Some(ms);
        }
    }
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

/// The forms Segment and most CRMs send, parsed without chrono (several times faster, and this runs on every
/// evaluation of a timestamp attribute): `YYYY-MM-DD`, and `YYYY-MM-DDTHH:MM:SS` with an optional fraction of
/// 1 to 9 digits and a `Z` or `+00:00` suffix. Anything else (offsets, leap seconds) returns `None` and goes
/// to chrono.
fn parse_common_utc(bytes: &[u8]) -> Option<i64> {
    fn digits(bytes: &[u8]) -> Option<i64> {
        bytes.iter().try_fold(0i64, |value, byte| {
            byte.is_ascii_digit()
                .then(|| value * 10 + i64::from(byte - b'0'))
        })
    }
    if bytes.len() < 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let (year, month, day) = (
        digits(&bytes[0..4])?,
        digits(&bytes[5..7])?,
        digits(&bytes[8..10])?,
    );
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if bytes.len() == 10 {
        return Some(days * DAY_MS);
    }
    if bytes.len() < 20
        || !matches!(bytes[10], b'T' | b't')
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    let (hour, minute, second) = (
        digits(&bytes[11..13])?,
        digits(&bytes[14..16])?,
        digits(&bytes[17..19])?,
    );
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut rest = &bytes[19..];
    let mut millis = 0;
    if rest.first() == Some(&b'.') {
        let fraction_length = rest[1..]
            .iter()
            .take_while(|byte| byte.is_ascii_digit())
            .count();
        if !(1..=9).contains(&fraction_length) {
            return None;
        }
        let fraction = &rest[1..=fraction_length];
        // Milliseconds: the first three digits, padded (later digits truncate, as chrono does).
        millis = (0..3)
            .map(|index| fraction.get(index).map_or(0, |byte| i64::from(byte - b'0')))
            .fold(0, |value, digit| value * 10 + digit);
        rest = &rest[1 + fraction_length..];
    }
    if !matches!(rest, b"Z" | b"z" | b"+00:00") {
        return None;
    }
    Some(days * DAY_MS + hour * HOUR_MS + minute * MINUTE_MS + second * 1_000 + millis)
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// A local date-time in `zone` as UTC milliseconds: the earlier instant when the local time occurs twice
/// (autumn), and, for a local time skipped by a spring-forward gap, the time read with the offset in force
/// before the gap (02:30 in a gap from 02:00 to 03:00 becomes 03:30), as RFC 5545 and Java do.
pub(crate) fn local_to_utc_ms(zone: Tz, naive: NaiveDateTime) -> Option<i64> {
    match zone.from_local_datetime(&naive) {
        LocalResult::Single(instant) => Some(instant.timestamp_millis()),
        LocalResult::Ambiguous(earlier, _) => Some(earlier.timestamp_millis()),
        LocalResult::None => (1..=16).find_map(|quarter| {
            let before = naive - chrono::Duration::minutes(15 * quarter);
            zone.from_local_datetime(&before).latest().map(|instant| {
                let offset_ms = before.and_utc().timestamp_millis() - instant.timestamp_millis();
                naive.and_utc().timestamp_millis() - offset_ms
            })
        }),
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

    proptest::proptest! {
        #[test]
        fn the_fast_path_agrees_with_chrono(ms in -62_135_596_800_000i64..253_402_300_799_999, digits in 0usize..10) {
            let instant = DateTime::<Utc>::from_timestamp_millis(ms).unwrap();
            let nanos = format!("{:09}", instant.timestamp_subsec_nanos());
            let fraction = if digits == 0 { String::new() } else { format!(".{}", &nanos[..digits]) };
            let text = format!("{}{fraction}Z", instant.format("%Y-%m-%dT%H:%M:%S"));
            let by_chrono = DateTime::parse_from_rfc3339(&text).ok().map(|parsed| parsed.timestamp_millis());
            proptest::prop_assert_eq!(parse_common_utc(text.as_bytes()), by_chrono, "{}", text);
            let date = instant.format("%Y-%m-%d").to_string();
            let date_by_chrono = NaiveDate::parse_from_str(&date, "%Y-%m-%d").ok().map(|day| day.and_time(NaiveTime::MIN).and_utc().timestamp_millis());
            proptest::prop_assert_eq!(parse_common_utc(date.as_bytes()), date_by_chrono);
        }

        #[test]
        fn the_fast_path_rejects_what_it_does_not_know(text in "[0-9TZ:.+-]{0,30}") {
            if let Some(ms) = parse_common_utc(text.as_bytes()) {
                let by_chrono = DateTime::parse_from_rfc3339(&text).ok().map(|parsed| parsed.timestamp_millis())
                    .or_else(|| NaiveDate::parse_from_str(&text, "%Y-%m-%d").ok().map(|day| day.and_time(NaiveTime::MIN).and_utc().timestamp_millis()));
                proptest::prop_assert_eq!(Some(ms), by_chrono, "{}", text);
            }
        }
    }

    #[test]
    fn the_fast_path_checks_calendar_ranges() {
        assert_eq!(
            parse_common_utc(b"2024-02-29"),
            parse_timestamp("2024-02-29T00:00:00+00:00")
        );
        assert_eq!(parse_common_utc(b"2023-02-29"), None);
        assert_eq!(parse_common_utc(b"2026-13-01"), None);
        assert_eq!(parse_common_utc(b"2026-01-01T24:00:00Z"), None);
        assert_eq!(
            parse_timestamp("2026-01-01T10:00:00.123456789Z"),
            Some(parse_timestamp("2026-01-01T10:00:00Z").unwrap() + 123)
        );
    }

    #[test]
    fn local_times_in_gaps_and_overlaps() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 2026-03-29 02:30 does not exist in Berlin (02:00 CET jumps to 03:00 CEST); read with CET it is 01:30 UTC.
        let gap = NaiveDate::from_ymd_opt(2026, 3, 29)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        assert_eq!(
            local_to_utc_ms(berlin, gap),
            parse_timestamp("2026-03-29T01:30:00Z")
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
