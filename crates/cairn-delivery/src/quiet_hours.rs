//! Quiet hours in the customer's local time (for example 21:00–08:00), correct across daylight-saving
//! changes: a window is defined on the wall clock, and its end is the first instant the customer's
//! wall clock reads the end time (or later, when that local time is skipped by a spring-forward gap).

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::DeliveryError;

const MINUTES_PER_DAY: u16 = 24 * 60;

/// A daily quiet window on the customer's wall clock, in minutes after local midnight. `start > end`
/// spans midnight (21:00–08:00); `start == end` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    pub start_minute: u16,
    pub end_minute: u16,
}

impl QuietHours {
    /// Quiet hours from `HH:MM` strings.
    pub fn parse(start: &str, end: &str) -> Result<QuietHours, DeliveryError> {
        let minute = |text: &str| -> Result<u16, DeliveryError> {
            let invalid = || DeliveryError::InvalidSetting {
                setting: "quiet_hours",
                reason: format!("`{text}` is not a time of day (HH:MM)"),
            };
            let (hours, minutes) = text.split_once(':').ok_or_else(invalid)?;
            let hours: u16 = hours.parse().map_err(|_| invalid())?;
            let minutes: u16 = minutes.parse().map_err(|_| invalid())?;
            if hours > 23 || minutes > 59 {
                return Err(invalid());
            }
            Ok(hours * 60 + minutes)
        };
        QuietHours {
            start_minute: minute(start)?,
            end_minute: minute(end)?,
        }
        .validated()
    }

    /// Checks the minutes are within a day and the window is not empty.
    pub fn validated(self) -> Result<QuietHours, DeliveryError> {
        if self.start_minute >= MINUTES_PER_DAY || self.end_minute >= MINUTES_PER_DAY {
            return Err(DeliveryError::InvalidSetting {
                setting: "quiet_hours",
                reason: "minutes must be below 1440".into(),
            });
        }
        if self.start_minute == self.end_minute {
            return Err(DeliveryError::InvalidSetting {
                setting: "quiet_hours",
                reason: "start and end are equal".into(),
            });
        }
        Ok(self)
    }

    fn contains_minute(self, minute: u16) -> bool {
        if self.start_minute < self.end_minute {
            (self.start_minute..self.end_minute).contains(&minute)
        } else {
            minute >= self.start_minute || minute < self.end_minute
        }
    }

    /// `None` when `at_ms` is outside quiet hours in `zone`; otherwise the instant (Unix ms) quiet
    /// hours end.
    pub fn quiet_until(self, at_ms: i64, zone: Tz) -> Option<i64> {
        let utc = DateTime::<Utc>::from_timestamp_millis(at_ms)?;
        let local = utc.with_timezone(&zone).naive_local();
        let minute = (local.hour() * 60 + local.minute()) as u16;
        if !self.contains_minute(minute) {
            return None;
        }
        let mut end_date = local.date();
        if self.start_minute > self.end_minute && minute >= self.start_minute {
            end_date = end_date.succ_opt()?;
        }
        let end_time = chrono::NaiveTime::from_hms_opt(
            u32::from(self.end_minute / 60),
            u32::from(self.end_minute % 60),
            0,
        )?;
        // The first instant after `at_ms` at which the wall clock reads the end time. Inside a
        // fall-back overlap the earlier reading may already be past (the customer is in the repeated
        // hour): then the later reading, or the next day's, is the end.
        (0..3).find_map(|extra_days| {
            let date = end_date.checked_add_days(chrono::Days::new(extra_days))?;
            readings_of(zone, date.and_time(end_time))
                .into_iter()
                .flatten()
                .find(|&end_ms| end_ms > at_ms)
        })
    }
}

/// The instants at which the wall clock in `zone` reads `local`, earliest first: one, two in a
/// fall-back overlap, or the end of the gap when a spring-forward gap skips `local`.
pub(crate) fn readings_of(zone: Tz, local: NaiveDateTime) -> [Option<i64>; 2] {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(instant) => [Some(instant.timestamp_millis()), None],
        LocalResult::Ambiguous(earliest, latest) => [
            Some(earliest.timestamp_millis()),
            Some(latest.timestamp_millis()),
        ],
        LocalResult::None => [end_of_gap(zone, local), None],
    }
}

/// The first instant whose wall-clock reading in `zone` is `local` or later, for a `local` inside a
/// spring-forward gap.
fn end_of_gap(zone: Tz, local: NaiveDateTime) -> Option<i64> {
    // Binary-search the transition: UTC offsets are within ±14 hours, so the instant lies within
    // 15 hours of `local` read as UTC, and across a gap the wall clock only moves forward.
    const WINDOW_MS: i64 = 15 * 3_600_000;
    let as_utc = Utc.from_utc_datetime(&local).timestamp_millis();
    let (mut low, mut high) = (as_utc - WINDOW_MS, as_utc + WINDOW_MS);
    let reads_at_or_after = |ms: i64| {
        DateTime::<Utc>::from_timestamp_millis(ms)
            .is_some_and(|t| t.with_timezone(&zone).naive_local() >= local)
    };
    if reads_at_or_after(low) || !reads_at_or_after(high) {
        return None;
    }
    while high - low > 1_000 {
        let middle = low + (high - low) / 2;
        if reads_at_or_after(middle) {
            high = middle;
        } else {
            low = middle;
        }
    }
    // Transitions happen on whole seconds.
    Some(high - high.rem_euclid(1_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn parse_refuses_nonsense() {
        assert!(QuietHours::parse("21:00", "08:00").is_ok());
        assert!(QuietHours::parse("24:00", "08:00").is_err());
        assert!(QuietHours::parse("9", "08:00").is_err());
        assert!(QuietHours::parse("08:00", "08:00").is_err());
    }

    #[test]
    fn overnight_window_in_new_york() {
        let quiet = QuietHours::parse("21:00", "08:00").unwrap();
        let zone = chrono_tz::America::New_York;
        // 2026-01-15 22:30 EST = 03:30Z next day → ends 08:00 EST = 13:00Z.
        assert_eq!(
            quiet.quiet_until(ms("2026-01-16T03:30:00Z"), zone),
            Some(ms("2026-01-16T13:00:00Z"))
        );
        // 06:00 EST: same day's 08:00.
        assert_eq!(
            quiet.quiet_until(ms("2026-01-16T11:00:00Z"), zone),
            Some(ms("2026-01-16T13:00:00Z"))
        );
        // 08:00 sharp is no longer quiet; 20:59 is not yet quiet.
        assert_eq!(quiet.quiet_until(ms("2026-01-16T13:00:00Z"), zone), None);
        assert_eq!(quiet.quiet_until(ms("2026-01-17T01:59:00Z"), zone), None);
    }

    #[test]
    fn the_end_is_on_the_local_clock_across_spring_forward() {
        // US DST starts 2026-03-08 02:00 EST → 03:00 EDT. Quiet 21:00–08:00 from Saturday night ends
        // at 08:00 EDT = 12:00Z (not 13:00Z as it would in winter).
        let quiet = QuietHours::parse("21:00", "08:00").unwrap();
        let zone = chrono_tz::America::New_York;
        assert_eq!(
            quiet.quiet_until(ms("2026-03-08T03:00:00Z"), zone),
            Some(ms("2026-03-08T12:00:00Z"))
        );
    }

    #[test]
    fn an_end_inside_the_gap_is_the_end_of_the_gap() {
        // Quiet 23:00–02:30 in New York on 2026-03-08: 02:30 does not exist; the clock jumps from
        // 02:00 EST to 03:00 EDT at 07:00Z.
        let quiet = QuietHours::parse("23:00", "02:30").unwrap();
        let zone = chrono_tz::America::New_York;
        assert_eq!(
            quiet.quiet_until(ms("2026-03-08T05:00:00Z"), zone),
            Some(ms("2026-03-08T07:00:00Z"))
        );
    }

    #[test]
    fn an_end_inside_the_overlap_is_its_first_occurrence() {
        // Europe/Paris falls back 2026-10-25 03:00 CEST → 02:00 CET. Quiet 22:00–02:30 ends at the
        // first 02:30, CEST = 00:30Z.
        let quiet = QuietHours::parse("22:00", "02:30").unwrap();
        let zone = chrono_tz::Europe::Paris;
        assert_eq!(
            quiet.quiet_until(ms("2026-10-24T21:00:00Z"), zone),
            Some(ms("2026-10-25T00:30:00Z"))
        );
    }

    #[test]
    fn inside_the_repeated_hour_the_later_reading_ends_quiet_hours() {
        // Paris, 2026-10-25: 03:00 CEST → 02:00 CET. Quiet 22:00–02:45. At 02:30 CET (01:30Z, the
        // second pass through 02:30), the first 02:45 (00:45Z) is already past: the end is 02:45 CET.
        let quiet = QuietHours::parse("22:00", "02:45").unwrap();
        let zone = chrono_tz::Europe::Paris;
        assert_eq!(
            quiet.quiet_until(ms("2026-10-25T01:30:00Z"), zone),
            Some(ms("2026-10-25T01:45:00Z"))
        );
        assert_eq!(
            quiet.quiet_until(ms("2026-10-25T00:30:00Z"), zone),
            Some(ms("2026-10-25T00:45:00Z"))
        );
    }

    #[test]
    fn gaps_far_from_utc_are_found() {
        // Auckland springs forward 2026-09-27 02:00 NZST (+12) → 03:00 NZDT (+13), at 14:00Z the day
        // before. Quiet 21:00–02:30: 02:30 does not exist; quiet hours end with the gap.
        let quiet = QuietHours::parse("21:00", "02:30").unwrap();
        let zone = chrono_tz::Pacific::Auckland;
        assert_eq!(
            quiet.quiet_until(ms("2026-09-26T10:00:00Z"), zone),
            Some(ms("2026-09-26T14:00:00Z"))
        );
    }

    #[test]
    fn daytime_window_and_other_zones() {
        let quiet = QuietHours::parse("12:00", "14:00").unwrap();
        let tokyo = chrono_tz::Asia::Tokyo;
        // 12:30 JST = 03:30Z → 14:00 JST = 05:00Z.
        assert_eq!(
            quiet.quiet_until(ms("2026-06-01T03:30:00Z"), tokyo),
            Some(ms("2026-06-01T05:00:00Z"))
        );
        assert_eq!(quiet.quiet_until(ms("2026-06-01T05:00:00Z"), tokyo), None);
    }

    proptest::proptest! {
        #[test]
        fn the_end_is_later_and_not_quiet(
            start in 0u16..1440,
            end in 0u16..1440,
            at in 1_700_000_000_000i64..1_900_000_000_000,
            zone in proptest::sample::select(vec![
                chrono_tz::America::New_York, chrono_tz::Europe::Paris, chrono_tz::Pacific::Auckland,
                chrono_tz::Australia::Lord_Howe, chrono_tz::America::Santiago, chrono_tz::Asia::Tokyo,
            ]),
        ) {
            let Ok(quiet) = (QuietHours { start_minute: start, end_minute: end }).validated() else { return Ok(()) };
            if let Some(end_ms) = quiet.quiet_until(at, zone) {
                proptest::prop_assert!(end_ms > at);
                proptest::prop_assert!(end_ms - at <= 26 * 3_600_000, "quiet hours last less than a day");
                proptest::prop_assert_eq!(quiet.quiet_until(end_ms, zone), None);
            }
        }
    }
}
