//! `cairn journey validate|test|schema` through the real binary: exit codes, error lines on stderr,
//! simulated path and effects on stdout.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn cairn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .env_remove("CAIRN_CONFIG")
        .env("CAIRN_LOG", "warn")
        .output()
        .expect("run cairn")
}

fn templates() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../journeys/templates")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn validate_accepts_a_template_against_the_template_catalog() {
    let file = templates().join("cart-abandonment.yaml");
    let catalog = templates().join("catalog.json");
    let output = cairn(&[
        "journey",
        "validate",
        file.to_str().expect("path"),
        "--catalog",
        catalog.to_str().expect("path"),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let summary: Value = serde_json::from_slice(&output.stdout).expect("JSON summary");
    assert_eq!(summary["id"], "cart-abandonment");
    assert_eq!(summary["steps"], 7);
}

#[test]
fn validate_lists_every_error_with_code_and_step_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("broken.json");
    std::fs::write(
        &file,
        r#"{"id": "broken", "name": "Broken", "entry": {"event": {"name": "Start"}}, "start": "a",
            "steps": [
              {"id": "a", "type": "wait", "duration": "forever", "next": "b"},
              {"id": "b", "type": "random_split", "branches": [{"name": "x", "weight": 30, "next": "c"}]},
              {"id": "c", "type": "join", "next": "nowhere"}
            ]}"#,
    )
    .expect("write");
    let output = cairn(&["journey", "validate", file.to_str().expect("path")]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("error[invalid_duration] step=a: "),
        "{stderr}"
    );
    assert!(stderr.contains("error[random_weights] step=b: the branch weights sum to 30, not 100 (at /steps/1/branches)"), "{stderr}");
    assert!(
        stderr.contains(
            "error[unknown_step] step=c: no step has the id `nowhere` (at /steps/2/next)"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("error[invalid_journey]: "), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn validate_reports_malformed_yaml_with_its_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, "id: j\nname: J\nentry: {event: {name: Start}}\nstart: a\nsteps:\n  - id: a\n    type: teleport\n").expect("write");
    let output = cairn(&["journey", "validate", file.to_str().expect("path")]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(stderr.starts_with("error[invalid_journey]: "), "{stderr}");
    assert!(
        stderr.contains("yaml line 7, column 11 at steps[0].type: unknown variant `teleport`"),
        "{stderr}"
    );
    assert!(stderr.contains("teleport"), "{stderr}");
}

#[test]
fn test_prints_the_path_and_messages_of_a_scripted_customer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = dir.path().join("events.jsonl");
    std::fs::write(
        &events,
        "{\"event\": \"Cart Abandoned\", \"timestamp\": \"2025-03-03T10:00:00Z\"}\n",
    )
    .expect("write");
    let file = templates().join("cart-abandonment.yaml");
    let output = cairn(&[
        "journey",
        "test",
        file.to_str().expect("path"),
        "--events",
        events.to_str().expect("path"),
        "--until",
        "3d",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let lines: Vec<Value> = text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    let messages: Vec<(String, String)> = lines
        .iter()
        .filter(|line| line["kind"] == "message")
        .map(|line| {
            (
                line["at"].as_str().unwrap_or_default().to_owned(),
                line["template"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        messages,
        [
            (
                "2025-03-03T11:00:00.000Z".to_owned(),
                "cart-reminder".to_owned()
            ),
            (
                "2025-03-04T11:00:00.000Z".to_owned(),
                "cart-reminder-sms".to_owned()
            ),
        ]
    );
    let ended: Vec<&Value> = lines
        .iter()
        .filter(|line| line["kind"] == "ended")
        .collect();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0]["reason"], "completed");

    let table = cairn(&[
        "journey",
        "test",
        file.to_str().expect("path"),
        "--events",
        events.to_str().expect("path"),
        "--format",
        "table",
    ]);
    assert!(table.status.success());
    let table = text(&table.stdout);
    assert!(
        table.contains("the awaited event did not arrive: timeout path"),
        "{table}"
    );
}

#[test]
fn schema_prints_the_published_schema() {
    let output = cairn(&["journey", "schema"]);
    assert!(output.status.success());
    let published = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/journey.schema.json"),
    )
    .expect("schema file");
    assert_eq!(text(&output.stdout).trim_end(), published.trim_end());
}
