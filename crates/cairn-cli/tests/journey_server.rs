//! `cairn journey …` and `cairn audience …` against a real `cairn serve`, through the real binary:
//! JSON on stdout, messages and `error[code]` lines on stderr, exit 2 for refused requests and 1 when
//! the server cannot be reached.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Served {
    child: Child,
    config: PathBuf,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve() -> Served {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        listener.local_addr().expect("addr").port()
    };
    let config = dir.path().join("cairn.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n[[workspaces]]\nid = \"acme\"\nwrite_keys = [\"wk_acme\"]\napi_tokens = [\"tok_acme\"]\n",
            dir.path().join("data").display()
        ),
    )
    .expect("config");
    let child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("CAIRN_LOG", "warn")
        .env_remove("CAIRN_API_TOKEN")
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server");
    let served = Served {
        child,
        config,
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    served
}

fn templates() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../journeys/templates")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Served {
    fn cairn(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_cairn"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("CAIRN_LOG", "warn")
            .env_remove("CAIRN_API_TOKEN")
            .output()
            .expect("run cairn")
    }

    /// Runs a command that must succeed; its stdout as JSON.
    fn json(&self, args: &[&str]) -> Value {
        let output = self.cairn(args);
        assert!(
            output.status.success(),
            "{args:?} failed: {}",
            text(&output.stderr)
        );
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|error| panic!("{args:?}: stdout is not JSON ({error})"))
    }

    /// Runs a command that must fail with `code`; its stderr.
    fn fails(&self, args: &[&str], exit: i32, code: &str) -> String {
        let output = self.cairn(args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(exit), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("error[{code}]")),
            "{args:?}: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{args:?}: nothing on stdout");
        stderr
    }

    fn track(&self, events: &[(&str, &str)]) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let client = reqwest::Client::new();
            for (user, event) in events {
                let response = client
                    .post(format!("{}/v1/track", self.base))
                    .basic_auth("wk_acme", Some(""))
                    .header("content-type", "application/json")
                    .body(json!({"userId": user, "event": event}).to_string())
                    .send()
                    .await
                    .expect("track");
                assert!(response.status().is_success());
            }
        });
    }
}

#[test]
fn journeys_and_audiences_are_driven_through_the_running_server() {
    let served = serve();
    let dir = tempfile::tempdir().expect("tempdir");
    served.track(&[
        ("seed", "Cart Abandoned"),
        ("seed", "Order Completed"),
        ("seed", "Unsubscribed"),
        ("u1", "Signed Up"),
    ]);

    // Push (create, then replace) and publish a template.
    let cart = templates().join("cart-abandonment.yaml");
    let cart = cart.to_str().expect("path");
    let output = served.cairn(&["journey", "push", cart]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("draft created; it validates"));
    let pushed: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(pushed["status"], "draft");
    let output = served.cairn(&["journey", "push", cart]);
    assert!(text(&output.stderr).contains("draft replaced"));
    let published = served.json(&["journey", "publish", "cart-abandonment"]);
    assert_eq!(published["published_version"], 1);
    served.fails(
        &["journey", "publish", "cart-abandonment"],
        2,
        "journey_conflict",
    );
    let list = served.json(&["journey", "list"]);
    assert_eq!(list["journeys"][0]["id"], "cart-abandonment");
    assert_eq!(list["journeys"][0]["status"], "published");
    let stats = served.json(&["journey", "stats", "cart-abandonment"]);
    assert_eq!(stats["versions"][0]["version"], 1);
    let shown = served.json(&["journey", "show", "cart-abandonment"]);
    assert_eq!(shown["versions"][0]["version"], 1);

    // An API-entry journey: enroll a customer and read why they got the message.
    let welcome = dir.path().join("welcome.json");
    std::fs::write(
        &welcome,
        json!({"id": "api-welcome", "name": "Welcome", "entry": {"api": {}}, "start": "hi",
               "steps": [{"id": "hi", "type": "send", "channel": "email", "template": "welcome", "next": "done"},
                         {"id": "done", "type": "exit"}]})
        .to_string(),
    )
    .expect("write");
    served.json(&["journey", "push", welcome.to_str().expect("path")]);
    served.json(&["journey", "publish", "api-welcome"]);
    let enrolled = served.json(&[
        "journey",
        "enroll",
        "api-welcome",
        "--user-id",
        "u1",
        "--data",
        "{\"coupon\": \"HELLO\"}",
    ]);
    assert!(enrolled["enrollment"].is_u64(), "{enrolled}");
    let trace = served.json(&[
        "journey",
        "trace",
        "--journey",
        "api-welcome",
        "--user-id",
        "u1",
    ]);
    let kinds: Vec<&str> = trace["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|entry| entry["decision"]["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"sent"), "{trace}");
    served.fails(
        &["journey", "enroll", "api-welcome", "--user-id", "u1"],
        2,
        "enrollment_refused",
    );
    served.fails(
        &["journey", "enroll", "api-welcome", "--user-id", "ghost"],
        2,
        "profile_not_found",
    );
    served.fails(
        &[
            "journey",
            "enroll",
            "api-welcome",
            "--user-id",
            "u1",
            "--data",
            "{",
        ],
        2,
        "invalid_input",
    );
    // The profile command asks the server that holds the data directory.
    let profile = served.json(&["profile", "get", "--workspace", "acme", "--user-id", "u1"]);
    assert_eq!(profile["id"], enrolled["profile_id"]);

    // A draft with problems is stored with warnings; publishing it lists every error and exits 2.
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "id: broken\nname: Broken\nentry: {event: {name: Signed Up}}\nstart: a\nsteps:\n  - {id: a, type: join, next: nowhere}\n",
    )
    .expect("write");
    let output = served.cairn(&["journey", "push", broken.to_str().expect("path")]);
    assert!(output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("warning[unknown_step] step=a: "),
        "{stderr}"
    );
    assert!(stderr.contains("1 problem(s)"), "{stderr}");
    let stderr = served.fails(&["journey", "publish", "broken"], 2, "invalid_journey");
    assert!(stderr.contains("error[unknown_step] step=a: "), "{stderr}");
    let malformed = dir.path().join("malformed.yaml");
    std::fs::write(&malformed, "id: m\nname: [\n").expect("write");
    served.fails(
        &["journey", "push", malformed.to_str().expect("path")],
        2,
        "invalid_journey",
    );

    // The lifecycle.
    let status = |args: &[&str]| served.json(args)["status"].clone();
    assert_eq!(status(&["journey", "pause", "cart-abandonment"]), "paused");
    served.fails(
        &["journey", "pause", "cart-abandonment"],
        2,
        "journey_conflict",
    );
    assert_eq!(
        status(&["journey", "resume", "cart-abandonment"]),
        "published"
    );
    served.fails(
        &["journey", "archive", "cart-abandonment"],
        2,
        "journey_conflict",
    );
    let stopped = served.json(&[
        "journey",
        "stop",
        "cart-abandonment",
        "--reason",
        "season over",
    ]);
    assert_eq!(
        (stopped["status"].clone(), stopped["stop_reason"].clone()),
        (json!("stopped"), json!("season over"))
    );
    assert_eq!(
        status(&["journey", "archive", "cart-abandonment"]),
        "archived"
    );
    let ids = |list: Value| -> Vec<String> {
        list["journeys"]
            .as_array()
            .expect("journeys")
            .iter()
            .filter_map(|journey| journey["id"].as_str().map(str::to_string))
            .collect()
    };
    assert!(!ids(served.json(&["journey", "list"])).contains(&"cart-abandonment".to_string()));
    assert!(ids(served.json(&["journey", "list", "--include-archived"]))
        .contains(&"cart-abandonment".to_string()));
    served.fails(&["journey", "stats", "nope"], 2, "journey_not_found");

    // Audiences.
    let audience = dir.path().join("signed-up.yaml");
    std::fs::write(
        &audience,
        "id: signed-up\nname: Signed up\ncondition: 'count(\"Signed Up\", 30d) > 0'\n",
    )
    .expect("write");
    let output = served.cairn(&["audience", "push", audience.to_str().expect("path")]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("audience \"signed-up\" created"));
    served.track(&[("u2", "Signed Up")]);
    let list = served.json(&["audience", "list"]);
    assert_eq!(list["audiences"][0]["id"], "signed-up");
    let members = served.json(&["audience", "members", "signed-up", "--limit", "10"]);
    assert_eq!(
        members["members"].as_array().map(Vec::len),
        Some(1),
        "{members}"
    );
    served.fails(&["audience", "show", "nope"], 2, "audience_not_found");

    // Credentials and an unreachable server.
    served.fails(
        &["journey", "list", "--token", "wrong"],
        2,
        "invalid_api_token",
    );
    served.fails(
        &["journey", "list", "--workspace", "initech"],
        2,
        "invalid_input",
    );
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        listener.local_addr().expect("addr").to_string()
    };
    let stderr = served.fails(&["--listen", &closed, "journey", "list"], 1, "internal");
    assert!(stderr.contains("cannot reach the server"), "{stderr}");
}
