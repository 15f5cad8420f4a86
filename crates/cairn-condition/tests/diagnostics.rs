//! Every diagnostic code, produced by a test input, with the text its span covers, its line and column.

use cairn_condition::{codes, compile, parse, Diagnostic, Schema, Type};

/// A journey-step schema: declared profile attributes, one event with properties, one step outcome.
fn step_schema() -> Schema {
    let mut schema = Schema::new();
    schema
        .profile_attribute("plan", Type::String)
        .profile_attribute("signup_at", Type::Timestamp)
        .profile_attribute("age", Type::Number)
        .profile_attribute("timezone", Type::String)
        .profile_attribute("tags", Type::List(Box::new(Type::String)))
        .profile_attribute("address.city", Type::String)
        .event("Product Viewed")
        .event_property("Order Completed", "total", Type::Number)
        .journey_field("steps.offer.outcome", Type::String);
    schema
}

/// An audience schema: no `event.*`, no `journey.*`.
fn audience_schema() -> Schema {
    let mut schema = step_schema();
    schema.allow_event_root(false).allow_journey_root(false);
    schema
}

/// (source, schema, expected diagnostics as (code, text under the span, line, column)).
type Row = (
    &'static str,
    fn() -> Schema,
    &'static [(&'static str, &'static str, u32, u32)],
);

const ROWS: &[Row] = &[
    (
        "profile.plan == \"a\" # x",
        step_schema,
        &[(codes::INVALID_CHARACTER, "#", 1, 21)],
    ),
    (
        "profile.plan == \"pro",
        step_schema,
        &[(codes::UNTERMINATED_STRING, "\"pro", 1, 17)],
    ),
    (
        "profile.plan == \"a\\qb\"",
        step_schema,
        &[(codes::INVALID_ESCAPE, "\\q", 1, 19)],
    ),
    (
        "profile.age == 1.5x",
        step_schema,
        &[(codes::INVALID_NUMBER, "1.5x", 1, 16)],
    ),
    (
        "profile.signup_at < now() - 1.5h",
        step_schema,
        &[(codes::INVALID_DURATION, "1.5h", 1, 29)],
    ),
    (
        "profile.signup_at < now() - 7days",
        step_schema,
        &[(codes::INVALID_DURATION, "7days", 1, 29)],
    ),
    (
        "profile.plan == \"pro\" && profile.age > 3",
        step_schema,
        &[(codes::UNEXPECTED_TOKEN, "&&", 1, 23)],
    ),
    (
        "profile.plan = \"pro\"",
        step_schema,
        &[(codes::UNEXPECTED_TOKEN, "=", 1, 14)],
    ),
    (
        "profile.age > )",
        step_schema,
        &[(codes::UNEXPECTED_TOKEN, ")", 1, 15)],
    ),
    (
        "profile.age >\n",
        step_schema,
        &[(codes::UNEXPECTED_END, "", 2, 1)],
    ),
    ("", step_schema, &[(codes::UNEXPECTED_END, "", 1, 1)]),
    (
        "1 < profile.age <= 3",
        step_schema,
        &[(codes::CHAINED_COMPARISON, "<=", 1, 17)],
    ),
    (
        "plan == \"pro\"",
        step_schema,
        &[(codes::UNKNOWN_NAME, "plan", 1, 1)],
    ),
    (
        "profile[plan] == \"pro\"",
        step_schema,
        &[(codes::INVALID_PATH, "plan", 1, 9)],
    ),
    (
        "profile.plann == \"pro\"",
        step_schema,
        &[(codes::UNKNOWN_ATTRIBUTE, "profile.plann", 1, 1)],
    ),
    (
        "event.properties.totl > 3",
        step_schema,
        &[(codes::UNKNOWN_FIELD, "event.properties.totl", 1, 1)],
    ),
    (
        "journey.steps.ofer.outcome == \"clicked\"",
        step_schema,
        &[(codes::UNKNOWN_FIELD, "journey.steps.ofer.outcome", 1, 1)],
    ),
    (
        "count(\"Order Complete\", 7d) > 0",
        step_schema,
        &[(codes::UNKNOWN_EVENT, "\"Order Complete\"", 1, 7)],
    ),
    (
        "event.name == \"Order Complete\"",
        step_schema,
        &[(codes::UNKNOWN_EVENT, "\"Order Complete\"", 1, 15)],
    ),
    (
        "event.name == \"Order Completed\"",
        audience_schema,
        &[(codes::ROOT_NOT_ALLOWED, "event.name", 1, 1)],
    ),
    (
        "journey.steps.offer.outcome == \"x\"",
        audience_schema,
        &[(codes::ROOT_NOT_ALLOWED, "journey.steps.offer.outcome", 1, 1)],
    ),
    (
        "days_sinc(profile.signup_at) > 3",
        step_schema,
        &[(codes::UNKNOWN_FUNCTION, "days_sinc", 1, 1)],
    ),
    (
        "days_since() > 3",
        step_schema,
        &[(codes::WRONG_ARITY, "days_since()", 1, 1)],
    ),
    (
        "contains(profile.tags) ",
        step_schema,
        &[(codes::WRONG_ARITY, "contains(profile.tags)", 1, 1)],
    ),
    (
        "\"a\" > 3",
        step_schema,
        &[(codes::TYPE_MISMATCH, "\"a\" > 3", 1, 1)],
    ),
    (
        "days_since(5) > 3",
        step_schema,
        &[(codes::TYPE_MISMATCH, "5", 1, 12)],
    ),
    (
        "profile.signup_at > \"yesterday\"",
        step_schema,
        &[(codes::INVALID_DATE, "\"yesterday\"", 1, 21)],
    ),
    (
        "profile.age in \"abc\"",
        step_schema,
        &[(codes::TYPE_MISMATCH, "\"abc\"", 1, 16)],
    ),
    (
        "profile.plan and true",
        step_schema,
        &[(codes::TYPE_MISMATCH, "profile.plan", 1, 1)],
    ),
    (
        "profile.tags.first == \"x\"",
        step_schema,
        &[(codes::TYPE_MISMATCH, "profile.tags.first", 1, 1)],
    ),
    (
        "count(profile.plan) > 0",
        step_schema,
        &[(codes::EXPECTED_LITERAL, "profile.plan", 1, 7)],
    ),
    (
        "count(\"Product Viewed\", profile.age) > 0",
        step_schema,
        &[(codes::EXPECTED_LITERAL, "profile.age", 1, 25)],
    ),
    (
        "matches(profile.plan, \"(\")",
        step_schema,
        &[(codes::INVALID_REGEX, "\"(\"", 1, 23)],
    ),
    (
        "hour(now(), \"Europe/Berln\") < 20",
        step_schema,
        &[(codes::INVALID_TIMEZONE, "\"Europe/Berln\"", 1, 13)],
    ),
    (
        "date(\"2026-13-45\") > now()",
        step_schema,
        &[(codes::INVALID_DATE, "\"2026-13-45\"", 1, 6)],
    ),
    (
        "count(\"Product Viewed\", 0d) > 0",
        step_schema,
        &[(codes::INVALID_WINDOW, "0d", 1, 25)],
    ),
    (
        "profile.age + 1",
        step_schema,
        &[(codes::NOT_BOOLEAN, "profile.age + 1", 1, 1)],
    ),
    (
        // Every error is reported, in source order, across lines.
        "profile.plann == \"pro\"\n  and days_sinc(1) > 3\n  and \"a\" > 3",
        step_schema,
        &[
            (codes::UNKNOWN_ATTRIBUTE, "profile.plann", 1, 1),
            (codes::UNKNOWN_FUNCTION, "days_sinc", 2, 7),
            (codes::TYPE_MISMATCH, "\"a\" > 3", 3, 7),
        ],
    ),
    (
        // Syntax errors in several clauses are all reported.
        "profile.age > ) or plan > 1 and (profile.age > ]) and profile.plan = \"x\"",
        step_schema,
        &[
            (codes::UNEXPECTED_TOKEN, ")", 1, 15),
            (codes::UNKNOWN_NAME, "plan", 1, 20),
            (codes::UNEXPECTED_TOKEN, "]", 1, 48),
            (codes::UNEXPECTED_TOKEN, "=", 1, 68),
        ],
    ),
    (
        "profile.plan == 'a\\q' and profile.age == 1.5x",
        step_schema,
        &[
            (codes::INVALID_ESCAPE, "\\q", 1, 19),
            (codes::INVALID_NUMBER, "1.5x", 1, 42),
        ],
    ),
];

fn span_of(source: &str, text: &str) -> std::ops::Range<usize> {
    if text.is_empty() {
        return source.len()..source.len();
    }
    let start = source
        .find(text)
        .expect("expected text occurs in the source");
    start..start + text.len()
}

#[test]
fn every_code_is_produced_with_its_position() {
    let mut failures = Vec::new();
    for (source, schema, expected) in ROWS {
        let actual: Vec<Diagnostic> = match compile(source, &schema()) {
            Ok(_) => Vec::new(),
            Err(diagnostics) => diagnostics,
        };
        let actual_summary: Vec<(&str, std::ops::Range<usize>, u32, u32)> = actual
            .iter()
            .map(|diagnostic| {
                (
                    diagnostic.code,
                    diagnostic.span.clone(),
                    diagnostic.line,
                    diagnostic.column,
                )
            })
            .collect();
        let expected_summary: Vec<(&str, std::ops::Range<usize>, u32, u32)> = expected
            .iter()
            .map(|(code, text, line, column)| (*code, span_of(source, text), *line, *column))
            .collect();
        if actual_summary != expected_summary {
            failures.push(format!("`{source}`:\n  expected {expected_summary:?}\n  got      {actual_summary:?} {actual:?}"));
        }
        for diagnostic in &actual {
            let lowercase_start = diagnostic
                .message
                .chars()
                .next()
                .is_some_and(|first| !first.is_uppercase());
            if !lowercase_start || diagnostic.message.ends_with('.') {
                failures.push(format!(
                    "`{source}`: message not lowercase or ends with a period: {}",
                    diagnostic.message
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_code_in_the_table_has_a_test_row() {
    let mut untested: Vec<&str> = codes::ALL
        .iter()
        .copied()
        .filter(|code| {
            !ROWS.iter().any(|(_, _, expected)| {
                expected
                    .iter()
                    .any(|(expected_code, ..)| expected_code == code)
            })
        })
        .collect();
    // too_complex needs a generated input; it is tested below.
    untested.retain(|code| *code != codes::TOO_COMPLEX);
    assert!(
        untested.is_empty(),
        "codes without a test row: {untested:?}"
    );
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let source = format!("{}1{}", "(".repeat(500), ")".repeat(500));
    let diagnostics = parse(&source).unwrap_err();
    assert_eq!(diagnostics.len(), 1);
    assert_eq!(diagnostics[0].code, codes::TOO_COMPLEX);
    // The 64th parenthesis opens the level past the limit; the error points just after it.
    assert_eq!((diagnostics[0].line, diagnostics[0].column), (1, 65));
    let negations = format!("{}1 > 0", "not ".repeat(200));
    assert_eq!(parse(&negations).unwrap_err()[0].code, codes::TOO_COMPLEX);
    let long = format!("profile.a == \"{}\"", "x".repeat(70_000));
    assert_eq!(parse(&long).unwrap_err()[0].code, codes::TOO_COMPLEX);
}

#[test]
fn messages_help_the_author() {
    let message = |source: &str| {
        compile(source, &step_schema()).unwrap_err()[0]
            .message
            .clone()
    };
    assert_eq!(
        message("days_sinc(profile.signup_at) > 3"),
        "unknown function `days_sinc`; did you mean `days_since`?"
    );
    assert_eq!(
        message("profile.plan == \"pro\" && true"),
        "`&&` is not an operator here; use `and`"
    );
    assert_eq!(
        message("days_since() > 3"),
        "`days_since` takes 1 argument, got 0"
    );
    assert_eq!(
        message("count(\"Product Viewed\", 30d, event.properties.total > 100) > 0"),
        "`count` takes 1 to 2 arguments, got 3 (filtering counted events by property is not supported)"
    );
    assert_eq!(
        message("\"a\" > 3"),
        "cannot compare a string with a number using `>`"
    );
    assert_eq!(
        message("profile.signup_at > 3"),
        "cannot compare a timestamp with a number using `>` (use `days_since(...)` to compare an age in days)"
    );
    assert_eq!(message("plan == \"pro\""), "unknown name `plan` (paths start with `profile.`, `event.` or `journey.`; did you mean `profile.plan`?)");
}

#[test]
fn the_default_schema_is_the_closed_one_with_every_root() {
    let schema = Schema::default();
    assert_eq!(
        compile("profile.x == 1", &schema).unwrap_err()[0].code,
        codes::UNKNOWN_ATTRIBUTE
    );
    assert!(compile("event.type == \"track\" and journey.id == \"j\"", &schema).is_ok());
}

#[test]
fn open_schemas_accept_unknown_paths_and_events() {
    let open = Schema::open();
    for source in [
        "profile.anything.deep == 1",
        "event.properties.whatever > 3",
        "journey.steps.any.outcome == \"x\"",
        "count(\"Any Event\", 1d) > 0",
        "event.name == \"Any Event\"",
    ] {
        assert!(compile(source, &open).is_ok(), "{source}");
    }
    let mut schema = Schema::new();
    schema.allow_unknown_profile_attributes(true);
    assert!(compile("profile.anything == 1", &schema).is_ok());
    assert_eq!(
        compile("count(\"X\") > 0", &schema).unwrap_err()[0].code,
        codes::UNKNOWN_EVENT
    );
}

#[test]
fn the_current_event_types_its_properties() {
    let mut schema = step_schema();
    schema
        .event_property("Cart Updated", "total", Type::String)
        .current_event(Some("Order Completed"));
    assert!(compile("event.properties.total > 3", &schema).is_ok());
    schema.current_event(Some("Cart Updated"));
    assert_eq!(
        compile("event.properties.total > 3", &schema).unwrap_err()[0].code,
        codes::TYPE_MISMATCH
    );
    schema.current_event(Some("Product Viewed"));
    assert_eq!(
        compile("event.properties.total > 3", &schema).unwrap_err()[0].code,
        codes::UNKNOWN_FIELD
    );
}

#[test]
fn the_crate_error_lists_every_diagnostic() {
    let error = cairn_condition::ConditionError::from(
        compile("profile.plann == 1 and days_sinc(1)", &step_schema()).unwrap_err(),
    );
    assert_eq!(
        error.to_string(),
        "invalid condition: 1:1: unknown profile attribute `plann` [unknown_attribute]; \
         1:24: unknown function `days_sinc`; did you mean `days_since`? [unknown_function]"
    );
}
