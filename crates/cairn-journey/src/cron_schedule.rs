//! Schedule entries: five-field cron expressions read in an IANA time zone, with `croner`.

use crate::local_time::utc;
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// A parsed cron expression with its time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    time_zone: Tz,
}

impl CronSchedule {
    /// Parses a five-field expression (`minute hour day-of-month month day-of-week`).
    pub fn parse(expression: &str, time_zone: Tz) -> Result<CronSchedule, String> {
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(expression)
            .map_err(|error| {
                format!("`{expression}` is not a five-field cron expression: {error}")
            })?;
        Ok(CronSchedule { cron, time_zone })
    }

    /// The time zone the expression is read in.
    pub fn time_zone(&self) -> Tz {
        self.time_zone
    }
}

/// The first firing strictly after `after_ms` (UTC ms), or `None` if the expression never fires again.
pub fn next_fire_after(schedule: &CronSchedule, after_ms: i64) -> Option<i64> {
    let start = utc(after_ms).with_timezone(&schedule.time_zone);
    schedule
        .cron
        .find_next_occurrence(&start, false)
        .ok()
        .map(|instant| instant.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn ms(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn mondays_at_nine_in_berlin_follow_the_wall_clock() {
        let schedule = CronSchedule::parse("0 9 * * MON", chrono_tz::Europe::Berlin).unwrap();
        // Friday 2025-03-28 -> Monday 2025-03-31 09:00 CEST = 07:00 UTC (DST began on the 30th).
        assert_eq!(
            next_fire_after(&schedule, ms("2025-03-28T12:00:00Z")),
            Some(ms("2025-03-31T07:00:00Z"))
        );
        // Strictly after: at the firing instant, the next one is a week later.
        assert_eq!(
            next_fire_after(&schedule, ms("2025-03-31T07:00:00Z")),
            Some(ms("2025-04-07T07:00:00Z"))
        );
    }

    #[test]
    fn rejects_six_fields_and_garbage() {
        assert!(CronSchedule::parse("0 0 9 * * MON", chrono_tz::UTC).is_err());
        assert!(CronSchedule::parse("every monday", chrono_tz::UTC).is_err());
        assert!(CronSchedule::parse("61 * * * *", chrono_tz::UTC).is_err());
    }
}
