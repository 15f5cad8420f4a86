"""RudderStack's Python SDK (`rudder-sdk-python`, import `rudderstack.analytics`), unchanged, against Cairn.

It differs from Segment's library in ways Cairn must accept: gzip-compressed bodies by default, the
write key only as HTTP Basic username (never in the body), a `channel` field, default integrations
`{"All": true}`, and identify traits sent in `context.traits` instead of `traits`.
"""

from __future__ import annotations

import pytest
import rudderstack.analytics as rudder_analytics
import rudderstack.analytics.request as rudder_request
from rudderstack.analytics.client import Client
from rudderstack.analytics.version import VERSION

from cairn_api import wait_until
from http_observer import assert_all_accepted, observe
from scenario import JOURNEY_CHECKS, Journey, Library, build_scenario, check_journey, python_kwargs, wait_for_scenario

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _server_channel(call: dict, message: dict) -> None:
    assert message.get("channel") == "server", f"RudderStack's `channel` was not kept: {message.get('channel')!r}"


LIBRARY = Library(
    name="analytics-python",  # RudderStack's Python SDK names itself so
    version=VERSION,
    identify_traits_in_context=True,
    generated_message_id=UUID,
    extra_message=_server_channel,
)


@pytest.fixture(scope="module")
def module_api_journey(cairn_server, acme_api, acme_write_key, run_id):
    """The SDK as its README shows it: module-level settings and calls, background batching, gzip."""
    scenario = build_scenario("rudderpy-batch", run_id, batch_size=30)
    errors = []
    rudder_analytics.write_key = acme_write_key
    rudder_analytics.dataPlaneUrl = cairn_server
    rudder_analytics.gzip = True
    rudder_analytics.max_retries = 1
    rudder_analytics.timeout = 10
    rudder_analytics.on_error = lambda error, batch: errors.append(f"{error} ({len(batch)} messages)")
    rudder_analytics.default_client = None
    try:
        with observe(rudder_request._session) as exchanges:
            for call in scenario.all_calls:
                getattr(rudder_analytics, call["method"])(**python_kwargs(call))
            rudder_analytics.flush()
            rudder_analytics.shutdown()
    finally:
        rudder_analytics.default_client = None
    assert not errors, f"the SDK reported errors: {errors}"
    return Journey(acme_api, scenario, LIBRARY), exchanges


@pytest.fixture(scope="module")
def sync_journey(cairn_server, acme_api, acme_write_key, run_id):
    """A Client in sync mode: one gzipped request per call, raising unless Cairn answers 200."""
    scenario = build_scenario("rudderpy-sync", run_id)
    client = Client(acme_write_key, host=cairn_server, sync_mode=True, gzip=True, max_retries=1, timeout=10)
    with observe(rudder_request._session) as exchanges:
        for call in scenario.calls[:-1]:
            getattr(client, call["method"])(**python_kwargs(call))
        wait_for_scenario(acme_api, scenario, scenario.calls[:-1])
        user_before = acme_api.lookup(user_id=scenario.user_id)
        legacy_before = acme_api.lookup(user_id=scenario.legacy_id)
        client.alias(**python_kwargs(scenario.calls[-1]))
    assert user_before is not None and legacy_before is not None and legacy_before["id"] != user_before["id"]
    return Journey(acme_api, scenario, LIBRARY, before_alias=(user_before, legacy_before)), exchanges


def test_module_api_batched_gzip_delivery(module_api_journey):
    journey, exchanges = module_api_journey
    assert_all_accepted(exchanges, len(journey.scenario.all_calls))
    assert max(exchange.batch_size for exchange in exchanges) > 1, "expected the SDK to batch"
    for exchange in exchanges:
        assert exchange.path == "/v1/batch"
        assert exchange.headers.get("Content-Encoding") == "gzip"
        assert exchange.headers["Authorization"].startswith("Basic ")
        assert "writeKey" not in exchange.body, "this SDK is expected to send the key only as Basic auth"


@pytest.mark.parametrize("check", JOURNEY_CHECKS)
def test_module_api_batched_gzip_journey(module_api_journey, check):
    check_journey(module_api_journey[0], check)


def test_sync_mode_delivery(sync_journey):
    journey, exchanges = sync_journey
    assert_all_accepted(exchanges, len(journey.scenario.calls))
    assert all(exchange.headers.get("Content-Encoding") == "gzip" for exchange in exchanges)


@pytest.mark.parametrize("check", JOURNEY_CHECKS)
def test_sync_mode_journey(sync_journey, check):
    check_journey(sync_journey[0], check)


def test_default_integrations_all_true(cairn_server, acme_api, acme_write_key, run_id):
    """Without integrations the SDK sends {"All": true}; Cairn keeps it."""
    client = Client(acme_write_key, host=cairn_server, sync_mode=True, gzip=True, max_retries=1, timeout=10)
    user_id = f"rudderpy-plain-{run_id}"
    with observe(rudder_request._session) as exchanges:
        client.track(user_id=user_id, event="No Integrations", properties={"n": 1}, message_id=f"{user_id}-m1")
    assert_all_accepted(exchanges, 1)
    profile = wait_until(lambda: acme_api.lookup(user_id=user_id))
    assert profile is not None, f"no profile for {user_id}"
    events = wait_until(lambda: acme_api.events(profile["id"]))
    assert [event["message_id"] for event in events] == [f"{user_id}-m1"]
    message = events[0]["message"]
    assert message["integrations"] == {"All": True}, message["integrations"]
    assert message["properties"] == {"n": 1}
    assert message["event"] == "No Integrations"
    assert message["channel"] == "server"
    assert message["context"]["library"] == {"name": "analytics-python", "version": VERSION}
