"""Fixtures for the client-compatibility tests.

One `cairn serve` process is started per pytest session, on a free loopback port, with a fresh data
directory and two workspaces (`acme` and `globex`). The tests send events through real, unchanged
Segment / RudderStack client libraries and read them back through Cairn's management API.

Environment:
  CAIRN_BIN                path of the cairn binary (default: <repo>/target/debug/cairn)
  CAIRN_STARTUP_TIMEOUT    seconds to wait for GET /readyz to answer 200 (default: 30)
  CAIRN_CLIENT_TEST_WAIT   seconds to wait for sent events to become visible (default: 20)
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

from cairn_api import CairnApi

REPO = Path(__file__).resolve().parents[2]
WORKSPACES = {
    "acme": {"write_key": "wk_acme", "token": "tok_acme"},
    "globex": {"write_key": "wk_globex", "token": "tok_globex"},
}

# Path of the running server's log, so a failing test can show its tail.
_SERVER_LOG: Path | None = None


def _cairn_bin() -> Path:
    raw = os.environ.get("CAIRN_BIN") or str(REPO / "target" / "debug" / "cairn")
    path = Path(raw)
    if not path.is_absolute():
        path = (Path.cwd() / path).resolve()
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(path: Path | None, max_chars: int = 6000) -> str:
    if path is None or not path.exists():
        return "(no server log)"
    text = path.read_text(errors="replace")
    return text[-max_chars:] if text else "(server log is empty)"


def _config_toml(port: int, data_dir: Path) -> str:
    lines = [f'listen = "127.0.0.1:{port}"', f'data_dir = "{data_dir}"', ""]
    for workspace, keys in WORKSPACES.items():
        lines += [
            "[[workspaces]]",
            f'id = "{workspace}"',
            f'write_keys = ["{keys["write_key"]}"]',
            f'api_tokens = ["{keys["token"]}"]',
            "",
        ]
    return "\n".join(lines)


@pytest.fixture(scope="session")
def cairn_server(tmp_path_factory):
    """Starts `cairn serve` and yields its base URL (e.g. http://127.0.0.1:40123)."""
    global _SERVER_LOG
    binary = _cairn_bin()
    if not binary.is_file() or not os.access(binary, os.X_OK):
        pytest.fail(
            f"cairn binary not found or not executable at {binary}; build it (cargo build) or set CAIRN_BIN",
            pytrace=False,
        )

    root = tmp_path_factory.mktemp("cairn-server")
    data_dir = root / "data"
    data_dir.mkdir()
    config = root / "cairn.toml"
    log_path = root / "server.log"
    _SERVER_LOG = log_path

    timeout = float(os.environ.get("CAIRN_STARTUP_TIMEOUT", "30"))
    proc = None
    base_url = None
    last_error = "no attempt"
    # A port picked by bind(0) can in rare cases be taken before the server binds it: retry once.
    for _attempt in range(2):
        port = _free_port()
        base_url = f"http://127.0.0.1:{port}"
        config.write_text(_config_toml(port, data_dir))
        log_file = open(log_path, "ab")
        proc = subprocess.Popen(
            [str(binary), "serve", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=str(root),
            env={**os.environ, "RUST_BACKTRACE": "1"},
        )
        log_file.close()
        deadline = time.monotonic() + timeout
        ready = False
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                last_error = f"cairn serve exited with status {proc.returncode}"
                break
            try:
                response = requests.get(f"{base_url}/readyz", timeout=2)
                if response.status_code == 200:
                    ready = True
                    break
                last_error = f"GET /readyz answered {response.status_code}: {response.text[:200]}"
            except requests.RequestException as error:
                last_error = f"GET /readyz failed: {error}"
            time.sleep(0.2)
        else:
            last_error = f"GET /readyz did not answer 200 within {timeout:.0f}s ({last_error})"
        if ready:
            break
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc = None
    if proc is None:
        message = (
            f"cairn serve did not become ready: {last_error}\n"
            f"command: {binary} serve --config {config}\n"
            f"config:\n{config.read_text()}\n"
            f"server output ({log_path}):\n{_log_tail(log_path)}"
        )
        print(message)
        pytest.fail(message, pytrace=False)

    yield base_url

    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def run_id() -> str:
    """Unique per session, put into every id the tests send so runs never see each other's data."""
    return uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def acme_api(cairn_server) -> CairnApi:
    return CairnApi(cairn_server, WORKSPACES["acme"]["token"])


@pytest.fixture(scope="session")
def globex_api(cairn_server) -> CairnApi:
    return CairnApi(cairn_server, WORKSPACES["globex"]["token"])


@pytest.fixture(scope="session")
def acme_write_key() -> str:
    return WORKSPACES["acme"]["write_key"]


@pytest.fixture(scope="session")
def globex_write_key() -> str:
    return WORKSPACES["globex"]["write_key"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and _SERVER_LOG is not None:
        report.sections.append(("cairn server log (tail)", _log_tail(_SERVER_LOG, 4000)))
