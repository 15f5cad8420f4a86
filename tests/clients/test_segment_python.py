"""Segment's Python library (`segment-analytics-python`, import `segment.analytics`), unchanged, against Cairn.

It posts every message to `/v1/batch`, with the write key both as HTTP Basic username and as
`writeKey` in the body; in sync mode each call is its own one-message batch, otherwise a consumer
thread batches the queue (here gzipped).
"""

from __future__ import annotations

import pytest
import segment.analytics.request as segment_request
from segment.analytics import Client
from segment.analytics.request import APIError
from segment.analytics.version import VERSION

from http_observer import assert_all_accepted, observe
from scenario import JOURNEY_CHECKS, Journey, Library, build_scenario, check_journey, python_kwargs, wait_for_scenario

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
LIBRARY = Library(name="analytics-python", version=VERSION, generated_message_id=UUID)


def send(client: Client, calls: list[dict]) -> None:
    for call in calls:
        ok, _message = getattr(client, call["method"])(**python_kwargs(call))
        assert ok, f"segment client refused {call['method']}"


@pytest.fixture(scope="module")
def sync_journey(cairn_server, acme_api, acme_write_key, run_id):
    """Sync mode: each call is one request, and raises APIError unless Cairn answers 2xx."""
    scenario = build_scenario("segpy-sync", run_id)
    client = Client(acme_write_key, host=cairn_server, sync_mode=True, max_retries=1, timeout=10)
    with observe(segment_request._session) as exchanges:
        send(client, scenario.calls[:-1])  # everything up to the alias
        wait_for_scenario(acme_api, scenario, scenario.calls[:-1])
        user_before = acme_api.lookup(user_id=scenario.user_id)
        legacy_before = acme_api.lookup(user_id=scenario.legacy_id)
        send(client, scenario.calls[-1:])
    assert user_before is not None and legacy_before is not None
    assert legacy_before["id"] != user_before["id"], "the legacy user should have its own profile before the alias"
    journey = Journey(acme_api, scenario, LIBRARY, before_alias=(user_before, legacy_before))
    return journey, exchanges


@pytest.fixture(scope="module")
def batched_journey(cairn_server, acme_api, acme_write_key, run_id):
    """The default mode: a consumer thread sends the queue in batches; gzip on."""
    scenario = build_scenario("segpy-batch", run_id, batch_size=30)
    errors = []
    client = Client(
        acme_write_key,
        host=cairn_server,
        gzip=True,
        upload_size=100,
        upload_interval=0.5,
        max_retries=1,
        timeout=10,
        on_error=lambda error, batch: errors.append(f"{error} ({len(batch)} messages)"),
    )
    with observe(segment_request._session) as exchanges:
        send(client, scenario.all_calls)
        client.flush()
        client.join()
    assert not errors, f"the library reported errors: {errors}"
    return Journey(acme_api, scenario, LIBRARY), exchanges


def test_sync_mode_delivery(sync_journey, acme_write_key):
    journey, exchanges = sync_journey
    assert_all_accepted(exchanges, len(journey.scenario.calls))
    for exchange in exchanges:
        assert exchange.path == "/v1/batch"
        assert exchange.headers["Authorization"].startswith("Basic ")
        assert exchange.body["writeKey"] == acme_write_key


@pytest.mark.parametrize("check", JOURNEY_CHECKS)
def test_sync_mode_journey(sync_journey, check):
    check_journey(sync_journey[0], check)


def test_batched_gzip_delivery(batched_journey):
    journey, exchanges = batched_journey
    assert_all_accepted(exchanges, len(journey.scenario.all_calls))
    assert max(exchange.batch_size for exchange in exchanges) > 1, "expected the library to batch"
    assert all(exchange.headers.get("Content-Encoding") == "gzip" for exchange in exchanges)


@pytest.mark.parametrize("check", JOURNEY_CHECKS)
def test_batched_gzip_journey(batched_journey, check):
    check_journey(batched_journey[0], check)


def test_wrong_write_key_is_rejected_with_a_segment_error(cairn_server, acme_api, run_id):
    client = Client("wk_does_not_exist", host=cairn_server, sync_mode=True, max_retries=1, timeout=10)
    user_id = f"segpy-badkey-{run_id}"
    with pytest.raises(APIError) as raised:
        client.track(user_id=user_id, event="Should Not Land")
    error = raised.value
    assert 400 <= error.status < 500, f"status {error.status}"
    # The library reads `code` and `message` from Cairn's JSON error; "unknown" means it could not.
    assert error.code not in (None, "", "unknown"), f"error code {error.code!r}, message {error.message!r}"
    assert error.message, "error without a message"
    assert acme_api.lookup(user_id=user_id) is None
