//! Local calendar time in a customer's time zone, correct across daylight-saving changes.
//!
//! Rules (documented in `docs/journeys.md`):
//! - a local time that does not exist (02:30 on a spring-forward day) moves to the next valid instant
//!   (the instant the clocks jump, 03:00 local);
//! - a local time that exists twice (02:30 on a fall-back day) means the first of the two instants.

use crate::document::Weekday;
use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

/// Parses an IANA time zone name (`Europe/Berlin`); `None` if unknown.
pub fn parse_time_zone(name: &str) -> Option<Tz> {
    name.trim().parse::<Tz>().ok()
}

/// Parses a local time of day written `HH:MM` (or `HH:MM:SS`).
pub fn parse_time_of_day(text: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(text.trim(), "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(text.trim(), "%H:%M:%S"))
        .ok()
}

/// The UTC instant (ms) of a local date-time: a gap moves forward to the end of the gap, a fold picks
/// the first instant.
pub fn resolve_local(tz: Tz, local: NaiveDateTime) -> i64 {
    if let Some(instant) = tz.from_local_datetime(&local).earliest() {
        return instant.timestamp_millis();
    }
    // In a gap: the first existing local minute after it is the instant the clocks jumped.
    let start_of_minute = local
        .with_second(0)
        .and_then(|value| value.with_nanosecond(0))
        .unwrap_or(local);
    for minutes in 1..=(48 * 60) {
        let candidate = start_of_minute + Duration::minutes(minutes);
        if let Some(instant) = tz.from_local_datetime(&candidate).earliest() {
            return instant.timestamp_millis();
        }
    }
    // No zone has a gap of two days; interpret as UTC rather than fail.
    Utc.from_utc_datetime(&local).timestamp_millis()
}

/// The local date-time of an instant.
pub fn local_date_time(tz: Tz, instant_ms: i64) -> NaiveDateTime {
    utc(instant_ms).with_timezone(&tz).naive_local()
}

/// The UTC date-time of an instant in ms (clamped to chrono's range).
pub fn utc(instant_ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(instant_ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// An instant written as RFC 3339 in UTC with milliseconds (`2025-03-30T01:00:00.000Z`).
pub fn format_rfc3339(instant_ms: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis(instant_ms)
        .map(|instant| instant.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// A set of weekdays as a bit mask (bit 0 = Monday); empty means every day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WeekdaySet(u8);

impl WeekdaySet {
    /// The set of the given days.
    pub fn of(days: &[Weekday]) -> WeekdaySet {
        WeekdaySet(
            days.iter()
                .fold(0u8, |mask, day| mask | 1 << weekday_index(*day)),
        )
    }

    /// Whether the day is allowed (every day is allowed by an empty set).
    pub fn allows(self, day: chrono::Weekday) -> bool {
        self.0 == 0 || self.0 & (1 << day.num_days_from_monday()) != 0
    }
}

fn weekday_index(day: Weekday) -> u32 {
    match day {
        Weekday::Mon => 0,
        Weekday::Tue => 1,
        Weekday::Wed => 2,
        Weekday::Thu => 3,
        Weekday::Fri => 4,
        Weekday::Sat => 5,
        Weekday::Sun => 6,
    }
}

/// The first instant at or after `now_ms` whose local time is `time_of_day` on an allowed day.
/// Without a time of day: `now_ms` if today is allowed, else the start of the next allowed day.
pub fn next_local_time(
    now_ms: i64,
    tz: Tz,
    time_of_day: Option<NaiveTime>,
    days: WeekdaySet,
) -> i64 {
    let today = local_date_time(tz, now_ms).date();
    for offset in 0..=8 {
        let Some(date) = today.checked_add_days(chrono::Days::new(offset)) else {
            break;
        };
        if !days.allows(date.weekday()) {
            continue;
        }
        match time_of_day {
            None if offset == 0 => return now_ms,
            None => return resolve_local(tz, date.and_time(NaiveTime::MIN)),
            Some(time) => {
                let candidate = resolve_local(tz, date.and_time(time));
                if candidate >= now_ms {
                    return candidate;
                }
            }
        }
    }
    now_ms
}

/// Reads a date attribute: `YYYY-MM-DD`, an RFC 3339 date-time (its date as written) or epoch ms.
pub fn parse_date_value(value: &serde_json::Value) -> Option<NaiveDate> {
    match value {
        serde_json::Value::String(text) => {
            let text = text.trim();
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .or_else(|| {
                    DateTime::parse_from_rfc3339(text)
                        .ok()
                        .map(|instant| instant.date_naive())
                })
        }
        serde_json::Value::Number(number) => number
            .as_i64()
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .map(|instant| instant.date_naive()),
        _ => None,
    }
}

/// The instant of `date + offset_days` at `time_of_day` (midnight when absent) in `tz`.
pub fn date_with_offset_instant(
    date: NaiveDate,
    offset_days: i32,
    time_of_day: Option<NaiveTime>,
    tz: Tz,
) -> Option<i64> {
    let shifted = date.checked_add_signed(Duration::days(i64::from(offset_days)))?;
    Some(resolve_local(
        tz,
        shifted.and_time(time_of_day.unwrap_or(NaiveTime::MIN)),
    ))
}

/// The next yearly anniversary of `date` (shifted by `offset_days`, at `time_of_day`) at or after
/// `now_ms`. February 29 falls on February 28 in years without one.
pub fn next_anniversary_instant(
    date: NaiveDate,
    offset_days: i32,
    time_of_day: Option<NaiveTime>,
    tz: Tz,
    now_ms: i64,
) -> Option<i64> {
    let this_year = local_date_time(tz, now_ms).year();
    for year in (this_year - 1)..=(this_year + 2) {
        let anniversary = NaiveDate::from_ymd_opt(year, date.month(), date.day())
            .or_else(|| NaiveDate::from_ymd_opt(year, date.month(), date.day() - 1))?;
        let instant = date_with_offset_instant(anniversary, offset_days, time_of_day, tz)?;
        if instant >= now_ms {
            return Some(instant);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text)
            .map(|instant| instant.timestamp_millis())
            .unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    fn local(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M").unwrap()
    }

    #[test]
    fn spring_forward_gap_moves_to_the_jump_in_berlin_and_new_york() {
        // Berlin: 2025-03-30 02:00 CET -> 03:00 CEST (01:00 UTC).
        assert_eq!(
            resolve_local(chrono_tz::Europe::Berlin, local("2025-03-30T02:30")),
            ms("2025-03-30T01:00:00Z")
        );
        // New York: 2025-03-09 02:00 EST -> 03:00 EDT (07:00 UTC).
        assert_eq!(
            resolve_local(chrono_tz::America::New_York, local("2025-03-09T02:30")),
            ms("2025-03-09T07:00:00Z")
        );
    }

    #[test]
    fn fall_back_fold_picks_the_first_instant() {
        // Berlin: 2025-10-26 03:00 CEST -> 02:00 CET; 02:30 happens at 00:30 and 01:30 UTC.
        assert_eq!(
            resolve_local(chrono_tz::Europe::Berlin, local("2025-10-26T02:30")),
            ms("2025-10-26T00:30:00Z")
        );
        // New York: 2025-11-02 02:00 EDT -> 01:00 EST; 01:30 happens at 05:30 and 06:30 UTC.
        assert_eq!(
            resolve_local(chrono_tz::America::New_York, local("2025-11-02T01:30")),
            ms("2025-11-02T05:30:00Z")
        );
    }

    #[test]
    fn next_local_time_of_day_keeps_the_wall_clock_across_dst() {
        let nine = parse_time_of_day("09:00");
        // Saturday 2025-03-29 12:00 in Berlin (CET): next 09:00 is Sunday, already CEST.
        assert_eq!(
            next_local_time(
                ms("2025-03-29T11:00:00Z"),
                chrono_tz::Europe::Berlin,
                nine,
                WeekdaySet::default()
            ),
            ms("2025-03-30T07:00:00Z")
        );
        // Before 09:00 the same day.
        assert_eq!(
            next_local_time(
                ms("2025-03-29T06:00:00Z"),
                chrono_tz::Europe::Berlin,
                nine,
                WeekdaySet::default()
            ),
            ms("2025-03-29T08:00:00Z")
        );
    }

    #[test]
    fn days_of_week_pick_the_next_allowed_day() {
        let mondays = WeekdaySet::of(&[Weekday::Mon]);
        // Wednesday 2025-11-05 in New York -> Monday 2025-11-10 10:00 EST = 15:00 UTC.
        assert_eq!(
            next_local_time(
                ms("2025-11-05T12:00:00Z"),
                chrono_tz::America::New_York,
                parse_time_of_day("10:00"),
                mondays
            ),
            ms("2025-11-10T15:00:00Z")
        );
        // Without a time: today if allowed, else midnight of the next allowed day.
        let now = ms("2025-11-10T20:00:00Z");
        assert_eq!(
            next_local_time(now, chrono_tz::America::New_York, None, mondays),
            now
        );
        assert_eq!(
            next_local_time(
                ms("2025-11-11T20:00:00Z"),
                chrono_tz::America::New_York,
                None,
                mondays
            ),
            ms("2025-11-17T05:00:00Z")
        );
    }

    #[test]
    fn anniversaries_recur_yearly_and_feb_29_falls_on_feb_28() {
        let birthday = NaiveDate::from_ymd_opt(1992, 2, 29).unwrap();
        assert_eq!(
            next_anniversary_instant(
                birthday,
                0,
                parse_time_of_day("10:00"),
                chrono_tz::UTC,
                ms("2025-03-01T00:00:00Z")
            ),
            Some(ms("2026-02-28T10:00:00Z"))
        );
        assert_eq!(
            next_anniversary_instant(
                birthday,
                0,
                parse_time_of_day("10:00"),
                chrono_tz::UTC,
                ms("2028-01-01T00:00:00Z")
            ),
            Some(ms("2028-02-29T10:00:00Z"))
        );
    }

    #[test]
    fn date_values_in_three_forms() {
        let expected = NaiveDate::from_ymd_opt(2025, 6, 1);
        assert_eq!(parse_date_value(&serde_json::json!("2025-06-01")), expected);
        assert_eq!(
            parse_date_value(&serde_json::json!("2025-06-01T23:00:00-05:00")),
            expected
        );
        assert_eq!(
            parse_date_value(&serde_json::json!(ms("2025-06-01T12:00:00Z"))),
            expected
        );
        assert_eq!(parse_date_value(&serde_json::json!("June")), None);
    }
}
