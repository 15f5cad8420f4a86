//! Helpers shared by the integration tests: templates, instants, scripted simulations.

#![allow(dead_code)]

use cairn_journey::simulate::{parse_script, simulate, Simulation, SimulationReport};
use cairn_journey::{parse_journey, validate, Catalog, CatalogDocument, CompiledJourney, Format};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::Arc;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The catalog shipped with the templates.
pub fn template_catalog() -> Catalog {
    let text = std::fs::read_to_string(repo_root().join("journeys/templates/catalog.json"))
        .expect("templates catalog");
    let document: CatalogDocument = serde_json::from_str(&text).expect("catalog parses");
    Catalog::from_document(&document)
}

/// A shipped template, validated against the shipped catalog.
pub fn template(name: &str) -> Arc<CompiledJourney> {
    let text = std::fs::read_to_string(repo_root().join(format!("journeys/templates/{name}.yaml")))
        .expect("template file");
    compile_text(&text, Format::Yaml, &template_catalog())
}

/// Parses and validates a document, panicking with every error.
pub fn compile_text(text: &str, format: Format, catalog: &Catalog) -> Arc<CompiledJourney> {
    let document = parse_journey(text, format).unwrap_or_else(|error| panic!("{error}"));
    match validate(&document, catalog) {
        Ok(journey) => Arc::new(journey),
        Err(errors) => panic!(
            "{}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

/// Milliseconds of an RFC 3339 instant.
pub fn ms(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|error| panic!("{text}: {error}"))
        .timestamp_millis()
}

/// RFC 3339 (UTC, milliseconds) of an instant.
pub fn at(ms: i64) -> String {
    cairn_journey::local_time::format_rfc3339(ms).expect("instant in range")
}

/// Simulates a journey for a customer: the script is JSON lines, `until` an RFC 3339 instant.
pub fn run(
    journey: &Arc<CompiledJourney>,
    profile: Value,
    script: &str,
    start: &str,
    until: &str,
) -> SimulationReport {
    let start_ms = ms(start);
    let profile: Map<String, Value> = match profile {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    simulate(
        journey.clone(),
        Simulation {
            profile_id: "prof_test".to_owned(),
            profile,
            script: parse_script(script, start_ms).unwrap_or_else(|error| panic!("{error}")),
            start_ms,
            until_ms: ms(until),
            trace_values: true,
        },
    )
}

/// The messages of a report as `(time, step id, channel, template)`.
pub fn messages(report: &SimulationReport) -> Vec<(String, String, String, String)> {
    report
        .messages()
        .into_iter()
        .map(|message| {
            (
                at(message.at_ms),
                message.step_id.to_string(),
                message.channel.as_str().to_owned(),
                message.template.to_string(),
            )
        })
        .collect()
}

/// The ends of a report as `(time, reason)`.
pub fn ends(report: &SimulationReport) -> Vec<(String, &'static str)> {
    report
        .ended()
        .into_iter()
        .map(|ended| (at(ended.at_ms), ended.reason.as_str()))
        .collect()
}

/// Owned tuple helper for expected messages.
pub fn message(
    time: &str,
    step: &str,
    channel: &str,
    template: &str,
) -> (String, String, String, String) {
    (
        time.to_owned(),
        step.to_owned(),
        channel.to_owned(),
        template.to_owned(),
    )
}
