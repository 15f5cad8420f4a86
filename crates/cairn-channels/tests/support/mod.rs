//! Test support: the Python stand-ins (a real aiosmtpd SMTP server and the HTTP provider stand-in)
//! started as subprocesses from the repo's `.venv`, installed on first use by
//! `tests/channels/setup-venv.sh`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("tests/channels/fixtures").join(name)).unwrap()
}

fn python() -> &'static PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let output = Command::new("bash")
            .arg(repo_root().join("tests/channels/setup-venv.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run tests/channels/setup-venv.sh");
        assert!(
            output.status.success(),
            "tests/channels/setup-venv.sh failed"
        );
        PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
    })
}

/// Installs ring as rustls' process-wide provider for test clients (idempotent).
pub fn init_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A running stand-in; stopped (stdin closed, then killed) on drop.
pub struct Standin {
    child: Child,
    stdin: Option<ChildStdin>,
    pub port: u16,
}

impl Standin {
    pub fn start(script: &str, args: &[String]) -> Standin {
        let mut child = Command::new(python())
            .arg(repo_root().join("tests/channels").join(script))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a stand-in");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let port = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("{script} did not start: {line:?}"))
            .parse()
            .unwrap();
        let stdin = child.stdin.take();
        Standin { child, stdin, port }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
