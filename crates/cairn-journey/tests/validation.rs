//! Every validation error produced by a test document (data-driven), all errors reported at once,
//! malformed documents rejected with positions, and the published JSON Schema kept current.

mod common;

use cairn_condition::Type;
use cairn_journey::document::Channel;
use cairn_journey::validate::codes;
use cairn_journey::{parse_journey, validate, Catalog, Format, ValidationError};
use std::collections::BTreeSet;

fn catalog() -> Catalog {
    let mut catalog = Catalog::new();
    catalog
        .profile_attribute("timezone", Type::String)
        .profile_attribute("tier", Type::String)
        .profile_attribute("renewal_date", Type::Timestamp)
        .event_property("Start", "total", Type::Number)
        .event("Order Completed")
        .template(Channel::Email, "t")
        .template(Channel::Webhook, "hook")
        .audience("lapsed")
        .writable_set("loyalty")
        .federated_set("loyalty");
    catalog
}

const VALID: &str = r#"
id: j
name: J
entry: {event: {name: Start}}
start: a
steps:
  - {id: a, type: send, channel: email, template: t, next: x}
  - {id: x, type: exit}
"#;

fn errors_of(yaml: &str) -> Vec<ValidationError> {
    let document =
        parse_journey(yaml, Format::Yaml).unwrap_or_else(|error| panic!("{error}\n{yaml}"));
    match validate(&document, &catalog()) {
        Ok(_) => Vec::new(),
        Err(errors) => errors,
    }
}

/// (expected code, expected step, expected path, document)
const CASES: &[(&str, Option<&str>, &str, &str)] = &[
    (codes::INVALID_ID, None, "/id", "id: 'bad id!'\nname: J\nentry: {event: {name: Start}}\nstart: x\nsteps: [{id: x, type: exit}]"),
    (codes::NO_STEPS, None, "/steps", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: x\nsteps: []"),
    (codes::DUPLICATE_STEP_ID, Some("x"), "/steps/1/id", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: x\nsteps: [{id: x, type: exit}, {id: x, type: exit}]"),
    (codes::DUPLICATE_CRITERION_ID, None, "/goals/1/id", "id: j\nname: J\nentry: {event: {name: Start}}\ngoals: [{id: g, event: Order Completed}, {id: g, event: Order Completed}]\nstart: x\nsteps: [{id: x, type: exit}]"),
    (codes::UNKNOWN_STEP, Some("a"), "/steps/0/next", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: a\nsteps: [{id: a, type: join, next: nowhere}]"),
    (codes::MISSING_TARGET, Some("d"), "/steps/0/default", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: d\nsteps:\n  - {id: d, type: decision_split, branches: [{condition: 'profile.tier == \"a\"', next: x}]}\n  - {id: x, type: exit}"),
    (codes::UNREACHABLE_STEP, Some("orphan"), "/steps/1", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: x\nsteps: [{id: x, type: exit}, {id: orphan, type: exit}]"),
    (codes::CYCLE_WITHOUT_WAIT, Some("a"), "/steps/0", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: a\nsteps:\n  - {id: a, type: send, channel: email, template: t, next: b}\n  - {id: b, type: decision_split, branches: [{condition: 'profile.tier == \"a\"', next: a}], default: x}\n  - {id: x, type: exit}"),
    (codes::EMPTY_SPLIT, Some("r"), "/steps/0/branches", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: r\nsteps: [{id: r, type: random_split, branches: []}]"),
    (codes::RANDOM_WEIGHTS, Some("r"), "/steps/0/branches", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: r\nsteps:\n  - {id: r, type: random_split, branches: [{name: a, weight: 50, next: x}, {name: b, weight: 40, next: x}]}\n  - {id: x, type: exit}"),
    (codes::UNKNOWN_ATTRIBUTE, Some("u"), "/steps/0/set/colour", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: u\nsteps:\n  - {id: u, type: update_profile, set: {colour: red}, next: x}\n  - {id: x, type: exit}"),
    (codes::INVALID_ATTRIBUTE, Some("w"), "/steps/0/until/attribute", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: w\nsteps:\n  - {id: w, type: wait, until: {attribute: renewal_date}, next: x}\n  - {id: x, type: exit}"),
    (codes::UNKNOWN_WRITE_BACK, Some("u"), "/steps/0/write_back/loyalti.tier", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: u\nsteps:\n  - {id: u, type: update_profile, write_back: {loyalti.tier: \"'gold'\"}, next: x}\n  - {id: x, type: exit}"),
    (codes::UNKNOWN_WRITE_BACK, Some("u"), "/steps/0/write_back/loyalty", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: u\nsteps:\n  - {id: u, type: update_profile, write_back: {loyalty: \"'gold'\"}, next: x}\n  - {id: x, type: exit}"),
    (codes::UNKNOWN_FEDERATED_SET, Some("f"), "/steps/0/sets/0", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: f\nsteps:\n  - {id: f, type: fetch, sets: [loyalti], timeout: 30s, on_success: x, on_failure: x, on_timeout: x}\n  - {id: x, type: exit}"),
    (codes::UNKNOWN_EVENT, None, "/entry/event/name", "id: j\nname: J\nentry: {event: {name: Mystery}}\nstart: x\nsteps: [{id: x, type: exit}]"),
    (codes::UNKNOWN_TEMPLATE, Some("a"), "/steps/0/template", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: a\nsteps:\n  - {id: a, type: send, channel: sms, template: t, next: x}\n  - {id: x, type: exit}"),
    (codes::UNKNOWN_AUDIENCE, None, "/entry/audience/id", "id: j\nname: J\nentry: {audience: {id: ghosts}}\nstart: x\nsteps: [{id: x, type: exit}]"),
    (codes::INVALID_CONDITION, Some("d"), "/steps/0/branches/0/condition", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: d\nsteps:\n  - {id: d, type: decision_split, branches: [{condition: 'profile.tier ==', next: x}], default: x}\n  - {id: x, type: exit}"),
    (codes::INVALID_DURATION, Some("w"), "/steps/0/duration", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: w\nsteps:\n  - {id: w, type: wait, duration: soonish, next: x}\n  - {id: x, type: exit}"),
    (codes::INVALID_TIME_ZONE, None, "/defaults/time_zone", "id: j\nname: J\nentry: {event: {name: Start}}\ndefaults: {time_zone: Mars/Olympus}\nstart: x\nsteps: [{id: x, type: exit}]"),
    (codes::INVALID_CRON, None, "/entry/schedule/cron", "id: j\nname: J\nentry: {schedule: {cron: 'every monday', time_zone: Europe/Berlin, audience: lapsed}}\nstart: x\nsteps: [{id: x, type: exit}]"),
    (codes::INVALID_TIME_OF_DAY, Some("w"), "/steps/0/until/time_of_day", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: w\nsteps:\n  - {id: w, type: wait, until: {time_of_day: '25:00'}, next: x}\n  - {id: x, type: exit}"),
    (codes::INVALID_DATE_TIME, Some("w"), "/steps/0/until/date_time", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: w\nsteps:\n  - {id: w, type: wait, until: {date_time: 'next tuesday'}, next: x}\n  - {id: x, type: exit}"),
    (codes::INVALID_WAIT, Some("w"), "/steps/0", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: w\nsteps:\n  - {id: w, type: wait, duration: 1h, until: {time_of_day: '09:00'}, next: x}\n  - {id: x, type: exit}"),
    (codes::INVALID_ENGAGEMENT_SPLIT, Some("e"), "/steps/0/send_step", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: e\nsteps:\n  - {id: e, type: engagement_split, send_step: x, engagement: opened, window: 1d, on_yes: x, on_no: x}\n  - {id: x, type: exit}"),
    (codes::INVALID_AWAIT_RESPONSE, Some("a"), "/steps/0/await_response", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: a\nsteps:\n  - {id: a, type: send, channel: email, template: t, await_response: {timeout: 30s, on_success: x, on_failure: x, on_timeout: x}}\n  - {id: x, type: exit}"),
    (codes::EMPTY_UPDATE, Some("u"), "/steps/0", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: u\nsteps:\n  - {id: u, type: update_profile, next: x}\n  - {id: x, type: exit}"),
    (codes::CONFLICTING_UPDATE, Some("u"), "/steps/0/unset/0", "id: j\nname: J\nentry: {event: {name: Start}}\nstart: u\nsteps:\n  - {id: u, type: update_profile, set: {tier: a}, unset: [tier], next: x}\n  - {id: x, type: exit}"),
    (codes::EMPTY_CRITERION, None, "/exits/0", "id: j\nname: J\nentry: {event: {name: Start}}\nexits: [{id: e}]\nstart: x\nsteps: [{id: x, type: exit}]"),
    (codes::CRITERION_NEVER_EVALUATED, None, "/goals/0/condition", "id: j\nname: J\nentry: {event: {name: Start}}\ngoals: [{id: g, event: Order Completed, condition: 'event.name == \"Start\"'}]\nstart: x\nsteps: [{id: x, type: exit}]"),
];

#[test]
fn the_valid_base_document_validates() {
    assert_eq!(errors_of(VALID), Vec::new());
}

#[test]
fn every_validation_error_is_produced_with_its_step_and_path() {
    for (code, step, path, document) in CASES {
        let errors = errors_of(document);
        assert!(
            errors.iter().any(|error| error.code == *code
                && error.step.as_deref() == *step
                && error.path == *path),
            "expected {code} step={step:?} at {path}, got:\n{}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
        for error in &errors {
            assert!(!error.message.is_empty());
            assert!(!error.message.ends_with('.'), "{error}");
        }
    }
}

#[test]
fn every_code_has_a_case() {
    let covered: BTreeSet<&str> = CASES.iter().map(|(code, ..)| *code).collect();
    let missing: Vec<&&str> = codes::ALL
        .iter()
        .filter(|code| !covered.contains(**code) && **code != codes::TOO_MANY_STEPS)
        .collect();
    assert!(
        missing.is_empty(),
        "codes without a test document: {missing:?}"
    );
}

#[test]
fn too_many_steps_is_reported() {
    let mut yaml =
        String::from("id: j\nname: J\nentry: {event: {name: Start}}\nstart: s0\nsteps:\n");
    for index in 0..=cairn_journey::validate::MAX_STEPS {
        yaml.push_str(&format!("  - {{id: s{index}, type: exit}}\n"));
    }
    assert!(errors_of(&yaml)
        .iter()
        .any(|error| error.code == codes::TOO_MANY_STEPS));
}

#[test]
fn condition_errors_carry_the_position_inside_the_condition() {
    let errors = errors_of(
        "id: j\nname: J\nentry: {event: {name: Start, filter: 'event.properties.total > 10 and profile.colour == 1'}}\nstart: x\nsteps: [{id: x, type: exit}]",
    );
    let error = errors
        .iter()
        .find(|error| error.code == codes::INVALID_CONDITION)
        .expect("a condition error");
    let position = error.condition.as_ref().expect("a position");
    assert_eq!((position.line, position.column), (1, 33));
    assert_eq!(error.path, "/entry/event/filter");
}

#[test]
fn all_errors_are_reported_at_once() {
    let errors = errors_of(
        "id: j\nname: J\nentry: {event: {name: Mystery}}\ndefaults: {time_zone: Nowhere}\nstart: a\nsteps:\n  - {id: a, type: wait, duration: forever, next: b}\n  - {id: b, type: send, channel: push, template: nope, next: c}\n  - {id: orphan, type: exit}\n",
    );
    let codes: BTreeSet<&str> = errors.iter().map(|error| error.code).collect();
    for expected in [
        codes::UNKNOWN_EVENT,
        codes::INVALID_TIME_ZONE,
        codes::INVALID_DURATION,
        codes::UNKNOWN_TEMPLATE,
        codes::UNKNOWN_STEP,
    ] {
        assert!(
            codes.contains(expected),
            "{expected} missing from {codes:?}"
        );
    }
}

#[test]
fn a_loop_through_a_duration_wait_is_allowed_and_counts_message_attempts() {
    let errors = errors_of(
        "id: j\nname: J\nentry: {event: {name: Start}}\nstart: a\nsteps:\n  - {id: a, type: send, channel: email, template: t, next: w}\n  - {id: w, type: wait, duration: 1d, next: b}\n  - {id: b, type: decision_split, branches: [{condition: 'profile.tier == \"done\"', next: x}], default: a}\n  - {id: x, type: exit}",
    );
    assert_eq!(errors, Vec::new());
}

#[test]
fn malformed_json_and_yaml_give_positions() {
    let json_error =
        parse_journey("{\n  \"id\": \"j\",\n  \"name\": 5\n}", Format::Json).unwrap_err();
    assert_eq!((json_error.line, json_error.column), (3, 11));
    assert_eq!(json_error.path, "name");
    assert!(
        json_error.message.contains("invalid type"),
        "{}",
        json_error.message
    );

    let syntax = parse_journey("{\"id\": \"j\",,}", Format::Json).unwrap_err();
    assert_eq!(syntax.line, 1);

    let yaml_error = parse_journey(
        "id: j\nname: J\nentry: {event: {name: Start}}\nstart: a\nsteps:\n  - id: a\n    type: wait\n    duration: [1h]\n    next: a\n",
        Format::Yaml,
    )
    .unwrap_err();
    assert!(yaml_error.line >= 6, "{yaml_error}");
    assert!(yaml_error.path.starts_with("steps[0]"), "{yaml_error}");

    let unknown_field = parse_journey(
        "id: j\nname: J\nentry: {event: {name: Start}}\nstart: a\nsteps: []\ncolour: red\n",
        Format::Yaml,
    )
    .unwrap_err();
    assert_eq!(unknown_field.line, 6);
    assert!(
        unknown_field.message.contains("unknown field `colour`"),
        "{unknown_field}"
    );

    let bad_yaml = parse_journey("id: j\nname: [unclosed\n", Format::Yaml).unwrap_err();
    assert_eq!(bad_yaml.format, "yaml");
    assert!(bad_yaml.line >= 2, "{bad_yaml}");
}

#[test]
fn json_and_yaml_documents_are_the_same_journey() {
    let yaml = parse_journey(VALID, Format::Yaml).expect("yaml");
    let json = serde_json::to_string(&yaml).expect("serialize");
    assert_eq!(parse_journey(&json, Format::Json).expect("json"), yaml);
}

#[test]
fn the_published_json_schema_is_the_derived_one() {
    let published = std::fs::read_to_string(common::repo_root().join("docs/journey.schema.json"))
        .expect("docs/journey.schema.json");
    assert_eq!(
        published.trim_end(),
        cairn_journey::document::journey_schema_json(),
        "docs/journey.schema.json is stale: regenerate it with `cairn journey schema > docs/journey.schema.json`"
    );
}

#[test]
fn the_templates_conform_to_the_published_schema_shape() {
    // Every template round-trips through the document types (which the schema is derived from).
    for entry in std::fs::read_dir(common::repo_root().join("journeys/templates")).expect("folder")
    {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|ext| ext.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let document = parse_journey(&text, Format::Yaml).expect("parses");
        let json = serde_json::to_string(&document).expect("serializes");
        assert_eq!(
            parse_journey(&json, Format::Json).expect("re-reads"),
            document
        );
    }
}

#[test]
fn every_code_is_documented() {
    let documented = std::fs::read_to_string(common::repo_root().join("docs/journeys.md"))
        .expect("docs/journeys.md");
    for code in codes::ALL {
        assert!(
            documented.contains(&format!("| `{code}` |")),
            "docs/journeys.md does not explain `{code}`"
        );
    }
}

#[test]
fn audience_documents_validate_their_condition_without_event_or_journey_data() {
    use cairn_journey::validate::validate_audience;
    let good = cairn_journey::parse_audience(
        "id: big-spenders\nname: Big spenders\ncondition: 'profile.tier == \"gold\" and count(\"Order Completed\", 30d) > 2'\n",
        Format::Yaml,
    )
    .expect("parses");
    let audience = validate_audience(&good, &catalog()).expect("valid audience");
    assert_eq!(&*audience.id, "big-spenders");
    let bad = cairn_journey::parse_audience(
        "{\"id\": \"x\", \"name\": \"X\", \"condition\": \"event.name == \\\"Start\\\"\"}",
        Format::Json,
    )
    .expect("parses");
    let errors =
        validate_audience(&bad, &catalog()).expect_err("event.* is not available to audiences");
    assert_eq!(errors[0].code, codes::INVALID_CONDITION);
    assert_eq!(errors[0].path, "/condition");
    let malformed = cairn_journey::parse_audience("id: x\nname: X\n", Format::Yaml).unwrap_err();
    assert!(
        malformed.message.contains("missing field `condition`"),
        "{malformed}"
    );
}
