"""RudderStack's Python SDK (`rudder-sdk-python`, import `rudderstack.analytics`), unchanged, against Cairn.

It differs from Segment's library in ways Cairn must accept: gzip-compressed bodies by default, the
write key only as HTTP Basic username (never in the body), a `channel` field, default integrations
`{"All": true}`, and identify traits sent in `context.traits` instead of `traits`.
"""

from __future__ import annotations

import rudderstack.analytics as rudder_analytics
import rudderstack.analytics.request as rudder_request
from rudderstack.analytics.client import Client
from rudderstack.analytics.version import VERSION

from cairn_api import wait_until
from http_observer import assert_all_accepted, observe
from scenario import Library, build_scenario, check_scenario, python_kwargs, wait_for_scenario

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


def test_module_api_batched_gzip(cairn_server, acme_api, acme_write_key, run_id):
    """The SDK as its README shows it: module-level settings and calls, background batching."""
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
    assert_all_accepted(exchanges, len(scenario.all_calls))
    assert max(exchange.batch_size for exchange in exchanges) > 1, "expected the SDK to batch"
    for exchange in exchanges:
        assert exchange.path == "/v1/batch"
        assert exchange.headers.get("Content-Encoding") == "gzip"
        assert exchange.headers["Authorization"].startswith("Basic ")
        assert "writeKey" not in exchange.body, "this SDK is expected to send the key only as Basic auth"
    check_scenario(acme_api, scenario, LIBRARY)


def test_default_integrations_and_sync_mode(cairn_server, acme_api, acme_write_key, run_id):
    """Sync mode (one gzipped request per call); without integrations the SDK sends {"All": true}."""
    scenario = build_scenario("rudderpy-sync", run_id)
    client = Client(acme_write_key, host=cairn_server, sync_mode=True, gzip=True, max_retries=1, timeout=10)

    with observe(rudder_request._session) as exchanges:
        for call in scenario.calls[:-1]:
            getattr(client, call["method"])(**python_kwargs(call))
        wait_for_scenario(acme_api, scenario, scenario.calls[:-1])
        before = acme_api.lookup(user_id=scenario.user_id)
        legacy = acme_api.lookup(user_id=scenario.legacy_id)
        assert before is not None and legacy is not None and legacy["id"] != before["id"]
        client.alias(**python_kwargs(scenario.calls[-1]))

        plain_id = f"rudderpy-plain-{run_id}"
        client.track(user_id=plain_id, event="No Integrations", properties={"n": 1}, message_id=f"{plain_id}-m1")

    assert_all_accepted(exchanges, len(scenario.calls) + 1)
    profile = check_scenario(acme_api, scenario, LIBRARY)
    assert profile["id"] == before["id"], "the alias target's profile should survive the merge"
    assert legacy["id"] in profile["merged_ids"]

    plain = wait_until(lambda: acme_api.lookup(user_id=plain_id))
    assert plain is not None, f"no profile for {plain_id}"
    events = wait_until(lambda: acme_api.events(plain["id"]))
    assert [event["message_id"] for event in events] == [f"{plain_id}-m1"]
    message = events[0]["message"]
    assert message["integrations"] == {"All": True}, message["integrations"]
    assert message["properties"] == {"n": 1}
    assert message["event"] == "No Integrations"
    assert message["context"]["library"] == {"name": "analytics-python", "version": VERSION}
