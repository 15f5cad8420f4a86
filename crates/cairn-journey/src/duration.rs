//! Durations as written in documents (`30m`, `1h`, `3d`, `1d 12h`, `2w`), read with `humantime`.

/// The longest duration a document may use (about ten years), so instants never overflow.
pub const MAX_DURATION_MS: i64 = 10 * 366 * 24 * 3_600_000;

/// Milliseconds in one day.
pub const DAY_MS: i64 = 24 * 3_600_000;

/// Parses a duration into milliseconds; the error is a message for a validation error.
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|error| format!("`{text}` is not a duration like `30m`, `1h`, `3d`: {error}"))?;
    let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
    if millis > MAX_DURATION_MS {
        return Err(format!("`{text}` is longer than ten years"));
    }
    Ok(millis)
}

/// Formats milliseconds for traces and messages (`1d 2h`).
pub fn format_duration_ms(millis: i64) -> String {
    let millis = u64::try_from(millis.max(0)).unwrap_or(0);
    humantime::format_duration(std::time::Duration::from_millis(millis)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_usual_forms() {
        assert_eq!(parse_duration_ms("30m"), Ok(30 * 60_000));
        assert_eq!(parse_duration_ms("1h"), Ok(3_600_000));
        assert_eq!(parse_duration_ms("3d"), Ok(3 * DAY_MS));
        assert_eq!(parse_duration_ms("1d 12h"), Ok(DAY_MS + 12 * 3_600_000));
        assert_eq!(parse_duration_ms("2w"), Ok(14 * DAY_MS));
    }

    #[test]
    fn rejects_nonsense_and_huge_values() {
        assert!(parse_duration_ms("soon").is_err());
        assert!(parse_duration_ms("-1h").is_err());
        assert!(parse_duration_ms("").is_err());
        assert!(parse_duration_ms("11years").is_err());
    }
}
