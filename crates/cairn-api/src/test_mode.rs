//! Test mode through the API: one journey document, one given or synthetic customer, a list of
//! timestamped events, a simulated clock — the simulator `cairn journey test` runs
//! ([`cairn_journey::simulate`]). Pure: the handler loads the document and the profile, this module
//! reads the request, compiles, simulates and renders.

use crate::documents::{invalid, DocumentKind};
use crate::error::ApiError;
use cairn_journey::duration::parse_duration_ms;
use cairn_journey::simulate::{earliest_timestamp, parse_script};
use cairn_journey::{simulate, validate, Catalog, JourneyDocument, Simulation};
use cairn_model::ErrorCode;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Most scripted events in one test run.
pub const MAX_TEST_EVENTS: usize = 10_000;

/// Longest simulated span (`until`).
pub const MAX_TEST_SPAN: &str = "400d";

/// The simulated span when the request does not say.
pub const DEFAULT_TEST_SPAN: &str = "30d";

/// The body of `POST /api/v1/journeys/{id}/test`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// A published version to run; without it, the draft.
    pub version: Option<u32>,
    /// An existing profile: its attributes and id (which decides random splits).
    pub profile_id: Option<String>,
    /// Profile attributes: the synthetic customer's, or overrides of the existing profile's.
    pub profile: Option<Map<String, Value>>,
    /// The customer's inputs, each like a line of `cairn journey test --events`: `event`,
    /// `properties`, `timestamp` (RFC 3339 or ms) or `after` (a duration from the start); or
    /// `{"type": "identify", "traits": {...}}`, `{"type": "delivery_result", ...}`.
    #[serde(default)]
    pub events: Vec<Value>,
    /// Start of the simulated clock (RFC 3339); default: the earliest event timestamp, else now.
    pub start: Option<String>,
    /// How long to simulate from the start (`30d` by default, at most 400 days).
    pub until: Option<String>,
}

/// The customer the simulation runs for.
pub struct TestProfile {
    pub id: String,
    pub attributes: Map<String, Value>,
}

fn bad_request(message: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidBody, message)
}

/// Runs the simulation. `now_ms` is the default start when no event has an absolute timestamp.
pub fn run(
    document: &JourneyDocument,
    request: TestRequest,
    profile: TestProfile,
    now_ms: i64,
) -> Result<Value, ApiError> {
    if request.events.len() > MAX_TEST_EVENTS {
        return Err(bad_request(format!(
            "at most {MAX_TEST_EVENTS} events per test run, not {}",
            request.events.len()
        )));
    }
    // Test mode runs the journey's logic even before the workspace has seen its events: names are
    // not checked here (validation and publishing check them).
    let mut catalog = Catalog::open();
    catalog.accept_any_template();
    let journey = Arc::new(
        validate(document, &catalog).map_err(|errors| invalid(DocumentKind::Journey, &errors))?,
    );
    // One JSON object a line: serde_json never writes a raw newline, so events[i] is line i + 1.
    let script_text = request
        .events
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    let start_ms = match &request.start {
        Some(text) => chrono::DateTime::parse_from_rfc3339(text)
            .map_err(|error| bad_request(format!("`start` {text:?}: {error}")))?
            .timestamp_millis(),
        None => earliest_timestamp(&script_text).unwrap_or(now_ms),
    };
    let span_text = request.until.as_deref().unwrap_or(DEFAULT_TEST_SPAN);
    let span_ms = parse_duration_ms(span_text)
        .map_err(|message| bad_request(format!("`until`: {message}")))?;
    let max_span_ms = parse_duration_ms(MAX_TEST_SPAN).unwrap_or(i64::MAX);
    if span_ms > max_span_ms {
        return Err(bad_request(format!(
            "`until` is longer than {MAX_TEST_SPAN}"
        )));
    }
    let script = parse_script(&script_text, start_ms).map_err(|error| {
        bad_request(format!(
            "events[{}]: {}",
            error.line.saturating_sub(1),
            error.message
        ))
    })?;
    let mut attributes = profile.attributes;
    attributes.extend(request.profile.unwrap_or_default());
    let report = simulate(
        journey.clone(),
        Simulation {
            profile_id: profile.id.clone(),
            profile: attributes,
            script,
            start_ms,
            until_ms: start_ms.saturating_add(span_ms),
            trace_values: true,
        },
    );
    let effects = report.timeline(&journey);
    let of_kind = |kind: &str| -> Vec<Value> {
        effects
            .iter()
            .filter(|line| line["kind"] == kind)
            .cloned()
            .collect()
    };
    let path: Vec<Value> = report
        .path(&journey)
        .into_iter()
        .map(|(at_ms, enrollment, step)| {
            json!({"at": crate::views::time(at_ms), "enrollment": enrollment, "step": step})
        })
        .collect();
    Ok(json!({
        "journey": &*journey.id,
        "version": request.version,
        "profile_id": profile.id,
        "start": crate::views::time(report.start_ms),
        "until": crate::views::time(report.until_ms),
        "path": path,
        "messages": of_kind("message"),
        "ended": of_kind("ended"),
        "effects": effects,
        "profile": report.profile,
        "active_enrollments": report.active.len(),
        "notes": report.notes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_journey::{parse_journey, Format};

    const CART: &str = include_str!("../../../journeys/templates/cart-abandonment.yaml");

    fn synthetic() -> TestProfile {
        TestProfile {
            id: "prof_test".into(),
            attributes: Map::new(),
        }
    }

    fn request(events: Value, until: &str) -> TestRequest {
        TestRequest {
            events: events.as_array().cloned().unwrap_or_default(),
            until: Some(until.into()),
            ..TestRequest::default()
        }
    }

    #[test]
    fn a_non_buyer_gets_the_email_after_an_hour_and_the_sms_a_day_later() {
        let document = parse_journey(CART, Format::Yaml).expect("template");
        let events = json!([{"event": "Cart Abandoned", "timestamp": "2025-03-03T10:00:00Z"}]);
        let result = run(&document, request(events, "3d"), synthetic(), 0).expect("runs");
        let messages: Vec<(&str, &str)> = result["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| {
                (
                    m["at"].as_str().unwrap_or_default(),
                    m["template"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            messages,
            vec![
                ("2025-03-03T11:00:00.000Z", "cart-reminder"),
                ("2025-03-04T11:00:00.000Z", "cart-reminder-sms")
            ]
        );
        assert_eq!(result["start"], "2025-03-03T10:00:00.000Z");
        let steps: Vec<&str> = result["path"]
            .as_array()
            .expect("path")
            .iter()
            .filter_map(|entry| entry["step"].as_str())
            .collect();
        assert_eq!(steps.first(), Some(&"wait_for_purchase"));
        assert!(steps.contains(&"reminder_sms"), "{steps:?}");
    }

    #[test]
    fn bad_requests_name_the_event_or_field_at_fault() {
        let document = parse_journey(CART, Format::Yaml).expect("template");
        let code_and_message = |request: TestRequest| {
            let error = run(&document, request, synthetic(), 0).expect_err("refused");
            (error.code, error.message)
        };
        let (code, message) = code_and_message(request(
            json!([{"event": "A", "after": "1h"}, {"type": "identify", "after": "2h"}]),
            "1d",
        ));
        assert_eq!(code, ErrorCode::InvalidBody);
        assert!(message.starts_with("events[1]: "), "{message}");
        let (code, message) = code_and_message(request(json!([]), "2000d"));
        assert_eq!(code, ErrorCode::InvalidBody);
        assert!(message.contains("until"), "{message}");
        let (code, _) = code_and_message(TestRequest {
            start: Some("yesterday".into()),
            ..TestRequest::default()
        });
        assert_eq!(code, ErrorCode::InvalidBody);
    }

    #[test]
    fn a_journey_that_does_not_compile_is_refused_with_every_error() {
        let document = parse_journey(
            "id: j\nname: J\nentry: {api: {}}\nstart: a\nsteps: [{id: a, type: join, next: nowhere}]",
            Format::Yaml,
        )
        .expect("parses");
        let error = run(&document, TestRequest::default(), synthetic(), 0).expect_err("refused");
        assert_eq!(error.code, ErrorCode::InvalidJourney);
        assert_eq!(error.errors.expect("errors")[0]["code"], "unknown_step");
    }
}
