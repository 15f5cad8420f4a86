//! ISO-8601 parsing and Segment's clock-skew correction.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

/// Parses an ISO-8601 timestamp as sent by tracking clients.
///
/// Accepts RFC 3339 (`2024-05-01T10:00:00.123Z`, `+02:00` offsets), a date-time without an offset
/// (read as UTC, as Segment does) and a plain date (`2024-05-01`, midnight UTC).
pub fn parse_iso8601(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(parsed) = DateTime::parse_from_rfc3339(text) {
        return Some(parsed.with_timezone(&Utc));
    }
    // RFC 3339 requires a `T`; ISO-8601 clients sometimes send a space, or `+0000` offsets.
    for format in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%z",
    ] {
        if let Ok(parsed) = DateTime::parse_from_str(text, format) {
            return Some(parsed.with_timezone(&Utc));
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some(naive.and_utc());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|naive| naive.and_utc())
}

/// Formats a timestamp the way Cairn stores and returns it: RFC 3339, milliseconds, `Z`.
pub fn format(timestamp: DateTime<Utc>) -> String {
    timestamp.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Segment's correction for a client clock that is off: `receivedAt − (sentAt − originalTimestamp)`.
///
/// Without `sent_at` the client's clock cannot be compared with ours and the original timestamp is
/// kept; without an original timestamp the event happened when it was sent, i.e. at `received_at`.
pub fn corrected_timestamp(
    original: Option<DateTime<Utc>>,
    sent_at: Option<DateTime<Utc>>,
    received_at: DateTime<Utc>,
) -> DateTime<Utc> {
    match (original, sent_at) {
        (Some(original), Some(sent_at)) => received_at - (sent_at - original),
        (Some(original), None) => original,
        (None, _) => received_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, h, m, s)
            .single()
            .expect("valid test time")
    }

    #[test]
    fn skew_is_corrected_from_sent_at() {
        // The client's clock is 1 hour fast: it says the event happened at 11:00 and it sent at 11:05;
        // we received at 10:05, so the event happened at 10:00 by our clock.
        let corrected = corrected_timestamp(Some(at(11, 0, 0)), Some(at(11, 5, 0)), at(10, 5, 0));
        assert_eq!(corrected, at(10, 0, 0));
    }

    #[test]
    fn without_sent_at_the_original_is_kept_and_without_original_received_at_is_used() {
        assert_eq!(
            corrected_timestamp(Some(at(9, 0, 0)), None, at(10, 0, 0)),
            at(9, 0, 0)
        );
        assert_eq!(
            corrected_timestamp(None, Some(at(9, 0, 0)), at(10, 0, 0)),
            at(10, 0, 0)
        );
    }

    #[test]
    fn parses_the_iso_8601_forms_clients_send() {
        let expected = at(10, 0, 0);
        for text in [
            "2024-05-01T10:00:00Z",
            "2024-05-01T10:00:00.000Z",
            "2024-05-01T12:00:00+02:00",
            "2024-05-01T10:00:00+0000",
            "2024-05-01 10:00:00+00:00",
            "2024-05-01T10:00:00",
            "2024-05-01T10:00:00.000000",
        ] {
            assert_eq!(parse_iso8601(text), Some(expected), "{text}");
        }
        assert_eq!(parse_iso8601("2024-05-01"), Some(at(0, 0, 0)));
    }

    #[test]
    fn rejects_non_timestamps() {
        for text in [
            "",
            "yesterday",
            "2024-13-01T00:00:00Z",
            "1714557600",
            "2024-05-01T25:00:00Z",
        ] {
            assert_eq!(parse_iso8601(text), None, "{text}");
        }
    }

    #[test]
    fn format_is_millisecond_rfc3339() {
        assert_eq!(format(at(10, 0, 0)), "2024-05-01T10:00:00.000Z");
    }
}
