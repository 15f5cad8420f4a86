//! Data-driven evaluation tests: (source, expected value as JSON) against one fixture context, covering every
//! operator and function, precedence, null semantics, run-time type mismatches and time zones across DST.
//! Timestamps are expected as RFC 3339 strings and durations as milliseconds (`Value::to_json`).

mod common;

use cairn_condition::{compile_expression, Schema};
use serde_json::{json, Value as Json};

fn evaluate(source: &str) -> Json {
    let context = common::fixture();
    let condition = compile_expression(source, &Schema::open())
        .unwrap_or_else(|diagnostics| panic!("`{source}` does not compile: {diagnostics:?}"));
    let value = condition.evaluate(&context).to_json();
    value
}

fn check_table(table: &[(&str, Json)]) {
    let mut failures = Vec::new();
    for (source, expected) in table {
        let actual = evaluate(source);
        if &actual != expected {
            failures.push(format!("`{source}`: expected {expected}, got {actual}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n")
    );
}

#[test]
fn literals_and_arithmetic() {
    check_table(&[
        ("1 + 2 * 3", json!(7.0)),
        ("(1 + 2) * 3", json!(9.0)),
        ("10 - 4 - 3", json!(3.0)),
        ("12 / 4 / 3", json!(1.0)),
        ("-2 * 3", json!(-6.0)),
        ("- -2", json!(2.0)),
        ("1 / 0", Json::Null),
        ("1.5e3", json!(1500.0)),
        ("\"a\\\"b\\\\c\\n\"", json!("a\"b\\c\n")),
        ("'single \\'quoted\\''", json!("single 'quoted'")),
        ("\"\\u{1F600}\"", json!("😀")),
        ("true", json!(true)),
        ("null", Json::Null),
        ("[1, \"a\", null, [true]]", json!([1.0, "a", null, [true]])),
        ("[]", json!([])),
        ("30m", json!(1_800_000)),
        ("12h + 30m", json!(45_000_000)),
        ("2w - 1d", json!(13 * 86_400_000_i64)),
        ("7d * 2", json!(14 * 86_400_000_i64)),
        ("3 * 1h", json!(10_800_000)),
        ("1d / 4", json!(21_600_000)),
        ("36h / 1d", json!(1.5)),
        ("-1h", json!(-3_600_000)),
        ("500ms + 1s", json!(1_500)),
        ("date(\"2026-12-24\")", json!("2026-12-24T00:00:00.000Z")),
        (
            "date(\"2026-12-24\") + 1d",
            json!("2026-12-25T00:00:00.000Z"),
        ),
        (
            "date(\"2026-12-24T10:00:00+02:00\") - 30m",
            json!("2026-12-24T07:30:00.000Z"),
        ),
        (
            "date(\"2026-12-25\") - date(\"2026-12-24\")",
            json!(86_400_000),
        ),
        ("profile.age + 1", json!(43.0)),
        ("profile.plan + 1", Json::Null),
        ("profile.missing * 2", Json::Null),
        ("profile.signup_at + 1d", json!("2026-05-02T12:00:00.000Z")),
        ("now() - profile.signup_at", json!(45 * 86_400_000_i64)),
    ]);
}

#[test]
fn comparisons_and_null_semantics() {
    check_table(&[
        ("profile.plan == \"pro\"", json!(true)),
        ("profile.plan != \"pro\"", json!(false)),
        ("profile.age > 40", json!(true)),
        ("profile.age >= 42", json!(true)),
        ("profile.age < 42", json!(false)),
        ("profile.age <= 42", json!(true)),
        ("1 == 1.0", json!(true)),
        ("\"B\" < \"a\"", json!(true)),
        ("\"é\" > \"z\"", json!(true)),
        ("[1, 2] == [1, 2]", json!(true)),
        ("[1, 2] == [2, 1]", json!(false)),
        ("profile.address == profile.address", json!(true)),
        // Missing values are null; comparisons with null are false, both ways.
        ("profile.missing == \"x\"", json!(false)),
        ("profile.missing != \"x\"", json!(false)),
        ("profile.missing > 1", json!(false)),
        ("profile.missing < 1", json!(false)),
        ("profile.missing == profile.also_missing", json!(false)),
        ("profile.missing == null", json!(true)),
        ("profile.missing != null", json!(false)),
        ("null == profile.missing", json!(true)),
        ("profile.phone == null", json!(true)),
        ("profile.plan == null", json!(false)),
        ("profile.plan != null", json!(true)),
        // Any-typed data of the wrong type: the comparison is false, `!=` included.
        ("profile.score > 10", json!(false)),
        ("profile.score == 17", json!(false)),
        ("profile.score != 17", json!(false)),
        ("profile.plan > 3", json!(false)),
        ("number(profile.score) > 10", json!(true)),
        // Timestamps from ISO strings in data compare as instants.
        ("profile.signup_at < now()", json!(true)),
        (
            "profile.signup_at == date(\"2026-05-01T14:00:00+02:00\")",
            json!(true),
        ),
        ("profile.renewal_at > date(\"2026-06-19\")", json!(true)),
        ("profile.not_a_date < now()", json!(false)),
        // A string literal compared with a timestamp is a date.
        ("profile.signup_at > \"2026-01-01\"", json!(true)),
        ("\"2026-05-01T12:00:00Z\" == profile.signup_at", json!(true)),
        (
            "event.timestamp >= \"2026-06-15T13:59:00+02:00\"",
            json!(true),
        ),
    ]);
}

#[test]
fn boolean_logic_membership_and_precedence() {
    check_table(&[
        ("true and false", json!(false)),
        ("true or false", json!(true)),
        ("not true", json!(false)),
        ("not profile.missing", json!(true)),
        ("profile.missing and true", json!(false)),
        ("profile.missing or true", json!(true)),
        ("not not profile.vip", json!(true)),
        // `and` binds tighter than `or`; `not` looser than comparisons.
        ("true or true and false", json!(true)),
        ("(true or true) and false", json!(false)),
        ("not 1 == 2", json!(true)),
        (
            "not profile.age > 40 or profile.plan == \"pro\"",
            json!(true),
        ),
        (
            "not (profile.age > 40 or profile.plan == \"pro\")",
            json!(false),
        ),
        ("1 + 1 == 2 and 2 * 3 > 5", json!(true)),
        // Short-circuit: the right side is not needed (and would be false/null anyway).
        ("false and profile.missing > 1", json!(false)),
        ("true or profile.missing > 1", json!(true)),
        (
            "event.properties.currency in [\"EUR\", \"USD\"]",
            json!(true),
        ),
        (
            "event.properties.currency not in [\"EUR\", \"USD\"]",
            json!(false),
        ),
        ("\"vip\" in profile.tags", json!(true)),
        ("\"gold\" in profile.tags", json!(false)),
        ("\"gold\" not in profile.tags", json!(true)),
        ("profile.missing in [\"a\", null]", json!(false)),
        ("profile.missing not in [\"a\"]", json!(true)),
        ("5 in profile.scores", json!(true)),
        ("profile.age in profile.missing", json!(false)),
    ]);
}

#[test]
fn paths_over_the_three_roots() {
    check_table(&[
        ("profile[\"first name\"]", json!("Ada")),
        ("profile.address.city", json!("Berlin")),
        ("profile[\"address\"][\"zip\"]", json!("10115")),
        ("profile.tags[1]", json!("beta")),
        ("profile.tags[9]", Json::Null),
        ("profile.plan.deeper", Json::Null),
        ("event.name", json!("Order Completed")),
        ("event.type", json!("track")),
        ("event.timestamp", json!("2026-06-15T11:59:00.000Z")),
        ("event.properties.total >= 100 and event.properties.currency in [\"EUR\", \"USD\"]", json!(true)),
        ("event.properties.items[0].sku", json!("A")),
        ("event.context.locale", json!("de-DE")),
        ("event.properties.coupon == null", json!(true)),
        ("journey.id", json!("cart")),
        ("journey.version", json!(3.0)),
        ("journey.trigger.name", json!("Cart Updated")),
        ("journey.trigger.properties.cart_value > 50", json!(true)),
        ("journey.steps.offer.outcome == \"clicked\" or journey.trigger.properties.cart_value > 50", json!(true)),
        ("journey.steps[\"send-email\"].status", json!("sent")),
        ("journey.steps.missing.outcome", Json::Null),
    ]);
}

#[test]
fn string_and_list_functions() {
    check_table(&[
        ("exists(profile.plan)", json!(true)),
        ("exists(profile.phone)", json!(false)),
        (
            "not exists(profile.phone) or lower(profile.country) == \"de\"",
            json!(true),
        ),
        ("contains(profile.tags, \"vip\")", json!(true)),
        ("contains(profile.tags, \"gold\")", json!(false)),
        ("contains(profile.email, \"@example\")", json!(false)),
        ("contains(lower(profile.email), \"@example\")", json!(true)),
        ("contains(profile.missing, \"x\")", json!(false)),
        ("starts_with(profile.email, \"Ada\")", json!(true)),
        ("ends_with(profile.email, \".com\")", json!(true)),
        ("starts_with(profile.missing, \"a\")", json!(false)),
        ("lower(\"ÄBC\")", json!("äbc")),
        ("upper(profile.plan)", json!("PRO")),
        ("lower(profile.missing)", Json::Null),
        ("len(\"héllo\")", json!(5.0)),
        ("len(profile.tags)", json!(2.0)),
        ("len(profile.address)", json!(2.0)),
        ("len(profile.age)", Json::Null),
        (
            "matches(profile.email, \"^[A-Za-z]+@example\\\\.com$\")",
            json!(false),
        ),
        (
            "matches(profile.email, \"(?i)^[a-z]+@example\\\\.com$\")",
            json!(true),
        ),
        ("matches(profile.missing, \"x\")", json!(false)),
        (
            "coalesce(profile.missing, profile.phone, \"fallback\")",
            json!("fallback"),
        ),
        ("coalesce(profile.plan, \"fallback\")", json!("pro")),
        ("coalesce(profile.missing)", Json::Null),
        ("number(\"42.5\")", json!(42.5)),
        ("number(\"abc\")", Json::Null),
        ("number(true)", json!(1.0)),
        ("string(42)", json!("42")),
        ("string(1.5)", json!("1.5")),
        ("string(true)", json!("true")),
        (
            "string(date(\"2026-01-02\"))",
            json!("2026-01-02T00:00:00.000Z"),
        ),
        ("string(profile.missing)", Json::Null),
    ]);
}

#[test]
fn time_functions_and_aggregates() {
    check_table(&[
        ("now()", json!("2026-06-15T12:00:00.000Z")),
        ("days_since(profile.signup_at)", json!(45.0)),
        ("days_since(profile.signup_at) > 30", json!(true)),
        (
            "profile.plan == \"pro\" and days_since(profile.signup_at) > 30",
            json!(true),
        ),
        ("days_since(\"2026-06-14T12:00:01Z\")", json!(0.0)),
        ("days_since(\"2026-06-16\")", json!(-1.0)),
        ("hours_since(journey.entered_at)", json!(24.0)),
        ("minutes_since(event.timestamp)", json!(1.0)),
        ("days_until(profile.renewal_at)", json!(4.0)),
        ("hours_until(profile.renewal_at)", json!(108.0)),
        ("days_since(profile.not_a_date)", Json::Null),
        ("days_since(profile.missing) > 3", json!(false)),
        ("count(\"Product Viewed\", 7d)", json!(2.0)),
        ("count(\"Product Viewed\")", json!(3.0)),
        (
            "count(\"Product Viewed\", 7d) > 0 and count(\"Order Completed\", 7d) == 0",
            json!(true),
        ),
        ("count(\"Never Happened\")", json!(0.0)),
        ("count(\"Order Completed\", 20d)", json!(1.0)),
        (
            "last_at(\"Product Viewed\")",
            json!("2026-06-14T12:00:00.000Z"),
        ),
        (
            "first_at(\"Product Viewed\")",
            json!("2026-06-05T12:00:00.000Z"),
        ),
        ("last_at(\"Never Happened\")", Json::Null),
        ("last_at(\"Order Completed\") < now() - 14d", json!(true)),
        ("weekday(now())", json!(1.0)),
        ("day(now())", json!(15.0)),
        ("month(now())", json!(6.0)),
        ("year(now())", json!(2026.0)),
        ("hour(now())", json!(12.0)),
        ("hour(now(), profile.timezone)", json!(14.0)),
        ("hour(now(), profile.bad_timezone)", Json::Null),
        (
            "contains(profile.tags, \"vip\") and hour(now(), profile.timezone) < 20",
            json!(true),
        ),
        ("month(profile.signup_at) == 5", json!(true)),
        (
            "date(\"2026-06-15T08:00:00\", profile.timezone)",
            json!("2026-06-15T06:00:00.000Z"),
        ),
        (
            "date(profile.renewal_at)",
            json!("2026-06-20T00:00:00.000Z"),
        ),
        ("date(profile.not_a_date)", Json::Null),
    ]);
}

#[test]
fn time_zones_across_daylight_saving_changes() {
    check_table(&[
        // Europe/Berlin springs forward on 2026-03-29 at 01:00 UTC (02:00 CET → 03:00 CEST).
        ("hour(date(\"2026-03-29T00:30:00Z\"), \"Europe/Berlin\")", json!(1.0)),
        ("hour(date(\"2026-03-29T01:30:00Z\"), \"Europe/Berlin\")", json!(3.0)),
        // ... and falls back on 2026-10-25 at 01:00 UTC (03:00 CEST → 02:00 CET): 02:xx happens twice.
        ("hour(date(\"2026-10-25T00:30:00Z\"), \"Europe/Berlin\")", json!(2.0)),
        ("hour(date(\"2026-10-25T01:30:00Z\"), \"Europe/Berlin\")", json!(2.0)),
        ("hour(date(\"2026-10-25T02:30:00Z\"), \"Europe/Berlin\")", json!(3.0)),
        // America/New_York springs forward on 2026-03-08 at 07:00 UTC and falls back on 2026-11-01 at 06:00 UTC.
        ("hour(date(\"2026-03-08T06:30:00Z\"), \"America/New_York\")", json!(1.0)),
        ("hour(date(\"2026-03-08T07:30:00Z\"), \"America/New_York\")", json!(3.0)),
        ("hour(date(\"2026-11-01T05:30:00Z\"), \"America/New_York\")", json!(1.0)),
        ("hour(date(\"2026-11-01T06:30:00Z\"), \"America/New_York\")", json!(1.0)),
        // Local dates: midnight in the zone, whatever the offset that day.
        ("date(\"2026-03-29\", \"Europe/Berlin\")", json!("2026-03-28T23:00:00.000Z")),
        ("date(\"2026-03-30\", \"Europe/Berlin\")", json!("2026-03-29T22:00:00.000Z")),
        ("date(\"2026-03-30\", \"Europe/Berlin\") - date(\"2026-03-29\", \"Europe/Berlin\")", json!(23 * 3_600_000)),
        ("date(\"2026-11-02\", \"America/New_York\") - date(\"2026-11-01\", \"America/New_York\")", json!(25 * 3_600_000)),
        // A local time inside the spring-forward gap is read with the offset before the gap (03:30 CEST).
        ("date(\"2026-03-29T02:30:00\", \"Europe/Berlin\")", json!("2026-03-29T01:30:00.000Z")),
        // A repeated local time is its first occurrence.
        ("date(\"2026-11-01T01:30:00\", \"America/New_York\")", json!("2026-11-01T05:30:00.000Z")),
        // Weekday and day follow the local date.
        ("weekday(date(\"2026-03-29T22:30:00Z\"), \"Europe/Berlin\")", json!(1.0)),
        ("weekday(date(\"2026-03-29T22:30:00Z\"))", json!(7.0)),
        ("day(date(\"2026-11-01T03:00:00Z\"), \"America/New_York\")", json!(31.0)),
    ]);
}

#[test]
fn matches_is_true_only_for_true() {
    let context = common::fixture();
    let schema = Schema::open();
    for (source, expected) in [
        ("profile.vip", true),
        ("profile.plan == \"pro\"", true),
        ("profile.plan", false),
        ("profile.missing", false),
        ("profile.age > 50", false),
    ] {
        let condition = cairn_condition::compile(source, &schema).unwrap();
        assert_eq!(condition.matches(&context), expected, "{source}");
    }
}
