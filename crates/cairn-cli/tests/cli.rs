//! The `cairn` binary's commands end to end: import (JSONL and CSV, events and profiles, rejects with
//! line numbers), `profile get`, `--dump-config`, configuration errors (also bad `[[delivery.activity]]`
//! subscriptions) and the data-directory lock.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn cairn(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("CAIRN_CONFIG")
        .env("CAIRN_LOG", "warn")
        .output()
        .expect("run cairn")
}

fn import(data_dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["import", "--workspace", "acme"];
    all.extend_from_slice(args);
    cairn(data_dir, &all)
}

fn stdout_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is JSON")
}

#[test]
fn jsonl_and_csv_imports_validate_every_row_and_report_rejects_by_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let events = dir.path().join("events.jsonl");
    std::fs::write(
        &events,
        concat!(
            "{\"type\":\"identify\",\"userId\":\"u1\",\"anonymousId\":\"a1\",\"traits\":{\"email\":\"Ann@Example.com\"},\"messageId\":\"e1\"}\n",
            "{\"type\":\"track\",\"userId\":\"u1\",\"event\":\"Order Completed\",\"properties\":{\"revenue\":42},\"messageId\":\"e2\"}\n",
            "\n",
            "{\"type\":\"track\",\"userId\":\"u1\",\"messageId\":\"e3\"}\n",
            "not json\n",
            "{\"type\":\"page\",\"anonymousId\":\"a1\",\"name\":\"Home\",\"timestamp\":\"2024-05-01T10:00:00Z\",\"messageId\":\"e4\"}\n",
        ),
    )
    .expect("write");
    let output = import(&data, &[events.to_str().expect("path")]);
    let summary = stdout_json(&output);
    assert_eq!(summary["rows"], 5);
    assert_eq!(summary["accepted"], 3);
    assert_eq!(summary["rejected"], 2);
    assert_eq!(summary["rejected_by_code"]["missing_event"], 1);
    assert_eq!(summary["rejected_by_code"]["invalid_json"], 1);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 4: missing_event"), "{stderr}");
    assert!(stderr.contains("line 5: invalid_json"), "{stderr}");

    // Importing the same file again stores nothing twice.
    let again = stdout_json(&import(&data, &[events.to_str().expect("path")]));
    assert_eq!(
        (again["accepted"].clone(), again["duplicates"].clone()),
        (Value::from(0), Value::from(3))
    );

    let profiles = dir.path().join("profiles.csv");
    std::fs::write(
        &profiles,
        "user_id,email,plan,traits.age\nu1,ann@example.com,pro,41\nu2,bob@example.com,free\n,,orphan,\nu3,cy@example.com,plus,30\n",
    )
    .expect("write");
    let output = import(
        &data,
        &["--kind", "profiles", profiles.to_str().expect("path")],
    );
    let summary = stdout_json(&output);
    assert_eq!(
        (summary["accepted"].clone(), summary["rejected"].clone()),
        (Value::from(2), Value::from(2))
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 3: invalid_body"),
        "the short row is reported by line: {stderr}"
    );
    assert!(stderr.contains("line 4: missing_identity"), "{stderr}");

    let profile = stdout_json(&cairn(
        &data,
        &[
            "profile",
            "get",
            "--workspace",
            "acme",
            "--email",
            "ANN@example.com",
            "--events",
            "10",
        ],
    ));
    assert_eq!(profile["traits"]["plan"], "pro");
    assert_eq!(profile["traits"]["age"], 41);
    assert_eq!(profile["event_count"], 4);
    let names: Vec<_> = profile["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        names.contains(&"page".to_string()),
        "the anonymous page view is on the identified profile"
    );

    let missing = cairn(
        &data,
        &["profile", "get", "--workspace", "other", "--user-id", "u1"],
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("error[profile_not_found]"));
}

#[test]
fn configuration_is_layered_dumpable_and_strict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("cairn.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:9999\"\n[ingest]\nmax_commit_events = 7\n",
    )
    .expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["--config", config.to_str().expect("path"), "--dump-config"])
        .env("CAIRN_INGEST__DEDUPE_WINDOW_HOURS", "24")
        .output()
        .expect("run");
    assert!(output.status.success());
    let dumped: toml::Value =
        toml::from_str(&String::from_utf8_lossy(&output.stdout)).expect("TOML on stdout");
    assert_eq!(dumped["listen"].as_str(), Some("127.0.0.1:9999"));
    assert_eq!(dumped["ingest"]["max_commit_events"].as_integer(), Some(7));
    assert_eq!(
        dumped["ingest"]["dedupe_window_hours"].as_integer(),
        Some(24)
    );

    std::fs::write(&config, "listen = \"127.0.0.1:9999\"\nlistne = \"typo\"\n").expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["--config", config.to_str().expect("path"), "--dump-config"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error[invalid_config]") && stderr.contains("listne"),
        "{stderr}"
    );
}

#[test]
fn a_running_server_keeps_imports_out_of_its_data_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let mut server = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args([
            "--data-dir",
            data.to_str().expect("path"),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "serve",
        ])
        .stderr(Stdio::null())
        .spawn()
        .expect("start server");
    // The store (and its lock) exists once the database file does.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !data.join("cairn.db").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let file = dir.path().join("e.jsonl");
    std::fs::write(
        &file,
        "{\"type\":\"track\",\"userId\":\"u\",\"event\":\"E\"}\n",
    )
    .expect("write");
    let output = import(&data, &[file.to_str().expect("path")]);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("error[data_dir_locked]"));
}

#[test]
fn bad_activity_feed_settings_are_refused_at_startup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("cairn.toml");
    let write = |activity: &str| {
        std::fs::write(
            &config,
            format!("listen = \"127.0.0.1:0\"\n[delivery]\n[[delivery.activity]]\n{activity}\n"),
        )
        .expect("write")
    };
    write("url = \"http://127.0.0.1:9/a\"\nsecret = \"0123456789abcdef\"\nevents = [\"opened\"]");
    let output = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["--config", config.to_str().expect("path"), "--dump-config"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error[invalid_config]")
            && stderr.contains("`opened`")
            && stderr.contains("`journey_entered`")
            && stderr.contains("delivery.activity.0.events.0"),
        "{stderr}"
    );

    write("url = \"http://127.0.0.1:9/a\"\nsecret = \"short\"\nevents = [\"goal_reached\"]");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["--config", config.to_str().expect("path")])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("serve")
        .env_remove("CAIRN_CONFIG")
        .env("CAIRN_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("cairn serve started despite a 5-byte activity secret");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let output = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!status.success());
    assert!(
        stderr.contains("delivery.activity[0].secret: must be at least 16 bytes"),
        "{stderr}"
    );
}
