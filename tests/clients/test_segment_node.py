"""Segment's Node library (`@segment/analytics-node`), unchanged, against Cairn.

`node/send_events.mjs` makes the library calls; the library batches (`flushAt`) and posts to
`/v1/batch` with HTTP Basic auth and `writeKey` in the JSON body; `closeAndFlush()` waits for it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from scenario import JOURNEY_CHECKS, Journey, Library, build_scenario, check_journey

NODE_DIR = Path(__file__).resolve().parent / "node"


def _node_metadata(call: dict, message: dict) -> None:
    metadata = message.get("_metadata")
    assert isinstance(metadata, dict) and metadata.get("jsRuntime") == "node", (
        f"analytics-node's _metadata was not kept: {metadata!r}"
    )


def run_node(base_url: str, write_key: str, run: str, calls: list[dict], flush_at: int, tmp_path: Path) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (analytics-node needs Node.js >= 20)", pytrace=False)
    if not (NODE_DIR / "node_modules" / "@segment" / "analytics-node").is_dir():
        pytest.fail(f"{NODE_DIR}/node_modules is missing: run scripts/client-tests.sh (npm ci)", pytrace=False)
    scenario_file = tmp_path / "scenario.json"
    scenario_file.write_text(json.dumps({"run": run, "flushAt": flush_at, "calls": calls}))
    result = subprocess.run(
        [node, "send_events.mjs", base_url, write_key, run, str(scenario_file)],
        cwd=NODE_DIR,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    summary = json.loads(lines[-1]) if lines else None
    assert result.returncode == 0 and summary is not None, (
        f"send_events.mjs exited {result.returncode}\nstdout: {result.stdout[-3000:]}\nstderr: {result.stderr[-3000:]}"
    )
    return summary


@pytest.fixture(scope="module")
def node_journey(cairn_server, acme_api, acme_write_key, run_id, tmp_path_factory):
    scenario = build_scenario("segnode", run_id, batch_size=25)
    # flushAt 8: the eight journey calls go in the first batch, the 25 batch items in four more.
    summary = run_node(cairn_server, acme_write_key, run_id, scenario.all_calls, 8, tmp_path_factory.mktemp("node"))
    library = Library(
        name="@segment/analytics-node",
        version=summary["library"]["version"],
        generated_message_id=r"node-next-\d+-[0-9a-f-]{36}",
        extra_message=_node_metadata,
    )
    return Journey(acme_api, scenario, library), summary


def test_batched_delivery(node_journey, cairn_server, acme_write_key):
    journey, summary = node_journey
    assert summary["errors"] == [], summary["errors"]
    requests_made = summary["requests"]
    assert sum(r["batchSize"] for r in requests_made) == len(journey.scenario.all_calls), requests_made
    assert max(r["batchSize"] for r in requests_made) > 1, f"expected batches: {requests_made}"
    for request in requests_made:
        assert request["url"] == f"{cairn_server}/v1/batch", request
        assert request["authorization"].startswith("Basic "), request
        assert request["bodyWriteKey"] == acme_write_key, request
    assert [r["status"] for r in summary["responses"]] == [200] * len(requests_made), summary["responses"]


@pytest.mark.parametrize("check", JOURNEY_CHECKS)
def test_journey(node_journey, check):
    check_journey(node_journey[0], check)


def test_wrong_write_key_fails_delivery(cairn_server, acme_api, run_id, tmp_path):
    """Cairn's 4xx for an unknown key reaches the library as a delivery error (no silent success)."""
    user_id = f"segnode-badkey-{run_id}"
    calls = [{"method": "track", "params": {"userId": user_id, "event": "Should Not Land"}}]
    node = shutil.which("node") or "node"
    scenario_file = tmp_path / "bad.json"
    scenario_file.write_text(json.dumps({"run": run_id, "flushAt": 1, "calls": calls}))
    result = subprocess.run(
        [node, "send_events.mjs", cairn_server, "wk_does_not_exist", run_id, str(scenario_file)],
        cwd=NODE_DIR,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, f"expected a failed delivery:\n{result.stdout}\n{result.stderr}"
    summary = json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])
    statuses = [r["status"] for r in summary["responses"]]
    assert statuses and all(400 <= status < 500 for status in statuses), statuses
    assert acme_api.lookup(user_id=user_id) is None
