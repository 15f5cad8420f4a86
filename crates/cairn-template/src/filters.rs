//! The template filters Cairn adds to minijinja's built-ins:
//! - `fallback(default)`: the value, or `default` when it is undefined, none or an empty string;
//! - `date(format="date", tz=None)`: a date-time (RFC 3339 string, `YYYY-MM-DD`, or Unix seconds or
//!   milliseconds) in the customer's time zone and locale. Formats: `date`, `time`, `datetime`
//!   (the locale's own), `long` (`January 2, 2026` / `2 janvier 2026`), or a strftime pattern;
//! - `number(decimals=None)`: grouping and decimal separators of the locale (`1,234.5`, `1.234,5`);
//! - `currency(code)`: an amount in an ISO 4217 currency laid out as the locale does
//!   (`$1,234.50`, `1.234,50 €`, `1 234,50 €`, `¥1,235`).
//!
//! The locale and zone come from the render context (`RenderContext::locale`, `time_zone`).

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use minijinja::value::{Kwargs, Value};
use minijinja::{Error, ErrorKind, State};
use pure_rust_locales::{locale_match, Locale};

/// The context key holding the render's locale and zone (not a template namespace: the schema
/// rejects it, so templates cannot depend on it).
pub(crate) const RENDER_SETTINGS_KEY: &str = "__cairn_render";

fn settings(state: &State) -> (Locale, Tz, String) {
    let settings = state.lookup(RENDER_SETTINGS_KEY).unwrap_or_default();
    let tag = settings
        .get_attr("locale")
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "en".into());
    let zone = settings
        .get_attr("tz")
        .ok()
        .and_then(|v| v.as_str().and_then(|name| name.parse::<Tz>().ok()))
        .unwrap_or(Tz::UTC);
    (crate::locale::data_locale(&tag), zone, tag)
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, message)
}

/// `value | fallback(default)`.
pub fn fallback(value: Value, default: Value) -> Value {
    let missing =
        value.is_undefined() || value.is_none() || value.as_str().is_some_and(str::is_empty);
    if missing {
        default
    } else {
        value
    }
}

fn parse_instant(value: &Value) -> Result<DateTime<Utc>, Error> {
    if let Some(text) = value.as_str() {
        if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
            return Ok(instant.with_timezone(&Utc));
        }
        if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            return day
                .and_hms_opt(12, 0, 0)
                .map(|noon| Utc.from_utc_datetime(&noon))
                .ok_or_else(|| invalid(format!("`{text}` is not a date")));
        }
        return Err(invalid(format!(
            "`{text}` is neither an RFC 3339 date-time nor a YYYY-MM-DD date"
        )));
    }
    let number =
        i64::try_from(value.clone()).map_err(|_| invalid(format!("`{value}` is not a date")))?;
    let millis = if number.abs() < 100_000_000_000 {
        number.saturating_mul(1000)
    } else {
        number
    };
    DateTime::from_timestamp_millis(millis)
        .ok_or_else(|| invalid(format!("`{number}` is out of range")))
}

fn long_date_pattern(tag: &str) -> &'static str {
    match tag.split('-').next().unwrap_or("en") {
        "en" => "%B %-d, %Y",
        "de" | "da" | "nb" | "fi" | "cs" => "%-d. %B %Y",
        "ja" | "zh" => "%Y年%-m月%-d日",
        "es" | "pt" => "%-d de %B de %Y",
        _ => "%-d %B %Y",
    }
}

/// `value | date(format="date", tz=None)`.
pub fn date(
    state: &State,
    value: Value,
    format: Option<String>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let (locale, context_zone, tag) = settings(state);
    let zone = match kwargs.get::<Option<String>>("tz")? {
        Some(name) => name
            .parse::<Tz>()
            .map_err(|_| invalid(format!("unknown time zone `{name}`")))?,
        None => context_zone,
    };
    kwargs.assert_all_used()?;
    let instant = parse_instant(&value)?.with_timezone(&zone);
    let pattern = match format.as_deref().unwrap_or("date") {
        "date" => "%x",
        "time" => "%X",
        "datetime" => "%x %X",
        "long" => long_date_pattern(&tag),
        custom => custom,
    };
    if StrftimeItems::new(pattern).any(|item| matches!(item, Item::Error)) {
        return Err(invalid(format!("`{pattern}` is not a valid date format")));
    }
    Ok(instant.format_localized(pattern, locale).to_string())
}

fn number_value(value: &Value) -> Result<f64, Error> {
    if let Some(text) = value.as_str() {
        return text
            .trim()
            .parse::<f64>()
            .map_err(|_| invalid(format!("`{text}` is not a number")));
    }
    f64::try_from(value.clone()).map_err(|_| invalid(format!("`{value}` is not a number")))
}

/// Formats `amount` with `decimals`, the decimal point and the thousands separator (groups of 3).
fn group_digits(amount: f64, decimals: usize, decimal_point: &str, thousands: &str) -> String {
    let formatted = format!("{:.*}", decimals, amount.abs());
    let (integer, fraction) = formatted.split_once('.').unwrap_or((&formatted, ""));
    let mut grouped = String::with_capacity(formatted.len() + 8);
    for (index, digit) in integer.chars().enumerate() {
        if index > 0 && (integer.len() - index) % 3 == 0 {
            grouped.push_str(thousands);
        }
        grouped.push(digit);
    }
    let mut out = String::new();
    if amount < 0.0 && formatted.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
        out.push('-');
    }
    out.push_str(&grouped);
    if !fraction.is_empty() {
        out.push_str(decimal_point);
        out.push_str(fraction);
    }
    out
}

/// `value | number(decimals=None)`: up to 2 decimals (trailing zeros dropped) unless given.
pub fn number(state: &State, value: Value, decimals: Option<u8>) -> Result<String, Error> {
    let (locale, _, _) = settings(state);
    let amount = number_value(&value)?;
    if !amount.is_finite() {
        return Err(invalid(format!("`{value}` is not a finite number")));
    }
    let decimal_point = locale_match!(locale => LC_NUMERIC::DECIMAL_POINT);
    let thousands = locale_match!(locale => LC_NUMERIC::THOUSANDS_SEP);
    match decimals {
        Some(decimals) => Ok(group_digits(
            amount,
            usize::from(decimals.min(12)),
            decimal_point,
            thousands,
        )),
        None => {
            let with_two = group_digits(amount, 2, decimal_point, thousands);
            let trimmed = match with_two.rsplit_once(decimal_point) {
                Some((integer, fraction)) if fraction.trim_end_matches('0').is_empty() => {
                    integer.to_owned()
                }
                Some((integer, fraction)) => {
                    format!("{integer}{decimal_point}{}", fraction.trim_end_matches('0'))
                }
                None => with_two,
            };
            Ok(trimmed)
        }
    }
}

/// The symbol and minor-unit digits of common ISO 4217 currencies; others print their code.
fn currency_symbol(code: &str) -> (String, usize) {
    let (symbol, digits) = match code {
        "USD" => ("$", 2),
        "EUR" => ("€", 2),
        "GBP" => ("£", 2),
        "JPY" => ("¥", 0),
        "CNY" => ("CN¥", 2),
        "INR" => ("₹", 2),
        "KRW" => ("₩", 0),
        "CHF" => ("CHF", 2),
        "CAD" => ("CA$", 2),
        "AUD" => ("A$", 2),
        "BRL" => ("R$", 2),
        "SEK" => ("kr", 2),
        "NOK" => ("kr", 2),
        "DKK" => ("kr.", 2),
        "PLN" => ("zł", 2),
        "MXN" => ("MX$", 2),
        other => return (other.to_owned(), 2),
    };
    (symbol.to_owned(), digits)
}

/// `value | currency("EUR")`.
pub fn currency(state: &State, value: Value, code: String) -> Result<String, Error> {
    let (locale, _, _) = settings(state);
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(invalid(format!(
            "`{code}` is not an ISO 4217 currency code"
        )));
    }
    let amount = number_value(&value)?;
    if !amount.is_finite() {
        return Err(invalid(format!("`{value}` is not a finite number")));
    }
    let (symbol, digits) = currency_symbol(&code);
    let decimal_point = match locale_match!(locale => LC_MONETARY::MON_DECIMAL_POINT) {
        "" => ".",
        point => point,
    };
    let thousands = locale_match!(locale => LC_MONETARY::MON_THOUSANDS_SEP);
    let precedes = locale_match!(locale => LC_MONETARY::P_CS_PRECEDES) == 1;
    let spaced = locale_match!(locale => LC_MONETARY::P_SEP_BY_SPACE) == 1;
    let digits_text = group_digits(amount.abs(), digits, decimal_point, thousands);
    let sign = if amount < 0.0 { "-" } else { "" };
    let space = if spaced { "\u{a0}" } else { "" };
    Ok(if precedes {
        format!("{sign}{symbol}{space}{digits_text}")
    } else {
        format!("{sign}{digits_text}{space}{symbol}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_group_by_three() {
        assert_eq!(group_digits(1234567.891, 2, ".", ","), "1,234,567.89");
        assert_eq!(group_digits(-1234.5, 1, ",", "."), "-1.234,5");
        assert_eq!(group_digits(999.0, 0, ".", ","), "999");
        assert_eq!(group_digits(-0.001, 2, ".", ","), "0.00");
    }

    #[test]
    fn fallback_replaces_missing_values_only() {
        assert_eq!(
            fallback(Value::UNDEFINED, Value::from("x")),
            Value::from("x")
        );
        assert_eq!(
            fallback(Value::from(()), Value::from("x")),
            Value::from("x")
        );
        assert_eq!(
            fallback(Value::from(""), Value::from("x")),
            Value::from("x")
        );
        assert_eq!(fallback(Value::from(0), Value::from("x")), Value::from(0));
    }
}
