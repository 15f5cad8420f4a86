"""Fixtures for the delivery end-to-end tests.

One real SMTP server (tests/channels/smtp_sink.py, aiosmtpd), one activity-feed subscriber (an HTTP
server recording what it is posted) and one `cairn serve` process per pytest session. The server's
`[delivery]` configuration sends email through the sink, signs tracking links under the server's own URL,
so the tests can follow them, and posts its activity feed to the subscriber.

Environment:
  CAIRN_BIN                path of the cairn binary (default: <repo>/target/debug/cairn)
  CAIRN_STARTUP_TIMEOUT    seconds to wait for GET /readyz to answer 200 (default: 30)
  CAIRN_DELIVERY_TEST_WAIT seconds to wait for a mail or an event (default: 60)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
WORKSPACE = {"id": "shop", "write_key": "wk_shop", "token": "tok_shop"}
TRACKING_KEY = "an-e2e-tracking-key-of-32-bytes!"
CALLBACK_SECRET = "an-e2e-callback-secret"
FEED_SECRET = "an-e2e-activity-feed-secret-32b!"
WAIT_SECONDS = float(os.environ.get("CAIRN_DELIVERY_TEST_WAIT", "60"))


def wait_until(condition, timeout: float = WAIT_SECONDS, interval: float = 0.2):
    """Polls `condition` until it returns something truthy; returns its last value (falsy on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except (AssertionError, requests.RequestException, ValueError, KeyError):
            value = None
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cairn_bin() -> Path:
    path = Path(os.environ.get("CAIRN_BIN") or REPO / "target" / "debug" / "cairn")
    return path if path.is_absolute() else (Path.cwd() / path).resolve()


@dataclass
class SmtpSink:
    port: int
    out_dir: Path

    def messages(self, to: str | None = None) -> list[Path]:
        """The received mails (oldest first), only those for `to` when given."""
        mails = sorted(self.out_dir.glob("*.eml"))
        if to is None:
            return mails
        return [mail for mail in mails if to in json.loads(mail.with_suffix(".json").read_text())["rcpt_tos"]]


@pytest.fixture(scope="session")
def smtp_sink(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("smtp-sink")
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "channels" / "smtp_sink.py"), "--port", "0", "--out-dir", str(out_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=sys.stderr,
        text=True,
    )
    line = proc.stdout.readline().strip()
    if not line.startswith("READY "):
        proc.kill()
        pytest.fail(f"smtp_sink.py did not start: {line!r}", pytrace=False)
    yield SmtpSink(port=int(line.split()[1]), out_dir=out_dir)
    proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@dataclass
class ActivityFeed:
    """What the activity-feed subscriber was posted: (headers, raw body) per request."""

    url: str
    received: list = field(default_factory=list)

    def items(self, profile: str | None = None) -> list[dict]:
        items = [json.loads(body) for _, body in list(self.received)]
        return [item for item in items if profile is None or item["profile_id"] == profile]


@pytest.fixture(scope="session")
def activity_feed():
    feed = ActivityFeed(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (the http.server API)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            feed.received.append((dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    feed.url = f"http://127.0.0.1:{server.server_address[1]}/activity"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield feed
    server.shutdown()


def _config(port: int, data_dir: Path, smtp_port: int, feed_url: str) -> str:
    return f"""
listen = "127.0.0.1:{port}"
data_dir = "{data_dir}"

[[workspaces]]
id = "{WORKSPACE['id']}"
write_keys = ["{WORKSPACE['write_key']}"]
api_tokens = ["{WORKSPACE['token']}"]

[delivery]
poll_interval_ms = 200

[delivery.email]
concurrency = 4
provider = {{ provider = "smtp", host = "127.0.0.1", port = {smtp_port}, security = "none", from = "Shop <news@shop.example.com>", message_id_domain = "mail.shop.example.com" }}

[delivery.tracking]
base_url = "http://127.0.0.1:{port}"
keys = ["{TRACKING_KEY}"]

[delivery.callbacks]
secret = "{CALLBACK_SECRET}"

[[delivery.activity]]
url = "{feed_url}"
secret = "{FEED_SECRET}"
events = ["journey_entered", "journey_exited", "goal_reached", "message_sent"]
"""


@dataclass
class Cairn:
    base_url: str
    log: Path

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        headers.setdefault("Authorization", f"Bearer {WORKSPACE['token']}")
        return requests.request(method, f"{self.base_url}{path}", headers=headers, timeout=10, **kwargs)

    def track(self, message: dict) -> None:
        response = requests.post(
            f"{self.base_url}/v1/{message['type']}",
            json=message,
            auth=(WORKSPACE["write_key"], ""),
            timeout=10,
        )
        assert response.status_code == 200, response.text

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"


@pytest.fixture(scope="session")
def cairn(tmp_path_factory, smtp_sink, activity_feed):
    binary = _cairn_bin()
    if not binary.is_file():
        pytest.fail(f"cairn binary not found at {binary}; build it (cargo build -p cairn-cli) or set CAIRN_BIN", pytrace=False)
    root = tmp_path_factory.mktemp("cairn")
    data_dir = root / "data"
    data_dir.mkdir()
    log = root / "server.log"
    port = _free_port()
    config = root / "cairn.toml"
    config.write_text(_config(port, data_dir, smtp_sink.port, activity_feed.url))
    with open(log, "ab") as log_file:
        proc = subprocess.Popen(
            [str(binary), "serve", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=str(root),
            # `CAIRN_*` variables are configuration to the server: only the log filter goes through.
            env={k: v for k, v in os.environ.items() if not k.startswith("CAIRN_") or k == "CAIRN_LOG"},
        )
    server = Cairn(base_url=f"http://127.0.0.1:{port}", log=log)
    timeout = float(os.environ.get("CAIRN_STARTUP_TIMEOUT", "30"))

    def ready():
        assert proc.poll() is None, f"cairn serve exited with {proc.returncode}"
        return requests.get(f"{server.base_url}/readyz", timeout=2).status_code == 200

    if not wait_until(ready, timeout=timeout):
        proc.kill()
        pytest.fail(f"cairn serve did not become ready:\n{server.log_tail()}", pytrace=False)
    yield server
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
