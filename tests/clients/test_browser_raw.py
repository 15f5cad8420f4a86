"""The browser library analytics.js (analytics-next), mimicked request for request.

A browser can't run here, so this sends what analytics.js sends: one message per request to the
short paths `/v1/t`, `/v1/i`, `/v1/p`, `/v1/s`, `/v1/g`, `/v1/a`, batches to `/v1/b`, with
`Content-Type: text/plain` (which avoids a CORS preflight) and the write key only as `writeKey` in
the body, no Authorization header. The message shape (context.page, userAgent, library
`analytics.js`, `_metadata`, `ajs-next-…` message ids, `timestamp` + `sentAt`) follows analytics-next.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest
import requests

from cairn_api import CairnApi, wait_until
from scenario import JOURNEY_CHECKS, Journey, Library, assert_same_instant, build_scenario, check_journey, iso

AJS_VERSION = "npm:next-1.84.3"
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
PAGE_CONTEXT = {
    "path": "/pricing",
    "referrer": "https://www.google.com/",
    "search": "?plan=pro",
    "title": "Pricing – Example",
    "url": "https://example.com/pricing?plan=pro",
}
METADATA = {"bundled": ["Segment.io"], "unbundled": [], "bundledIds": []}


def _ajs_metadata(call: dict, message: dict) -> None:
    assert message.get("_metadata") == METADATA, f"analytics.js _metadata not kept: {message.get('_metadata')!r}"


LIBRARY = Library(
    name="analytics.js",
    version=AJS_VERSION,
    generated_message_id=r"ajs-next-\d+-[0-9a-f-]{36}",
    extra_context={"page": PAGE_CONTEXT},
    extra_message=_ajs_metadata,
)


def ajs_message(call: dict, write_key: str, sent_at: str | None) -> dict:
    message = {"type": call["method"], **copy.deepcopy(call["params"])}
    context = message.setdefault("context", {})
    context.setdefault("userAgent", USER_AGENT)
    context["page"] = dict(PAGE_CONTEXT)
    context["library"] = {"name": "analytics.js", "version": AJS_VERSION}
    message.setdefault("integrations", {})
    message.setdefault("messageId", f"ajs-next-{int(time.time() * 1000)}-{uuid.uuid4()}")
    message["_metadata"] = dict(METADATA)
    message["writeKey"] = write_key
    if sent_at is not None:
        message["sentAt"] = sent_at
    return message


def post_text_plain(base_url: str, path: str, body: dict) -> requests.Response:
    response = requests.post(
        f"{base_url}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "text/plain"},
        timeout=10,
    )
    assert "Authorization" not in response.request.headers
    return response


def assert_success(response: requests.Response) -> None:
    assert response.status_code == 200, (
        f"POST {response.request.url} answered {response.status_code}: {response.text[:1000]}"
    )
    assert response.json().get("success") is True, f"POST {response.request.url} answered {response.text[:1000]}"


def send_ajs(base_url: str, write_key: str, call: dict) -> requests.Response:
    path = "/v1/" + call["method"][0]
    return post_text_plain(base_url, path, ajs_message(call, write_key, iso(datetime.now(timezone.utc))))


@pytest.fixture(scope="module")
def ajs_journey(cairn_server, acme_api, acme_write_key, run_id):
    scenario = build_scenario("ajs", run_id, batch_size=12)
    responses = [send_ajs(cairn_server, acme_write_key, call) for call in scenario.calls]
    # analytics-next's batching delivery: sentAt once for the batch, writeKey in the body and each event.
    batch = [ajs_message(call, acme_write_key, None) for call in scenario.batch_calls]
    body = {"writeKey": acme_write_key, "batch": batch, "sentAt": iso(datetime.now(timezone.utc))}
    responses.append(post_text_plain(cairn_server, "/v1/b", body))
    # Read the events back three at a time, to go through the `next_before` cursors too.
    return Journey(acme_api, scenario, LIBRARY, events_page_size=3), responses


def test_short_paths_text_plain_delivery(ajs_journey):
    _journey, responses = ajs_journey
    assert [urlsplit(r.request.url).path for r in responses] == [
        "/v1/t", "/v1/t", "/v1/i", "/v1/t", "/v1/p", "/v1/s", "/v1/g", "/v1/a", "/v1/b"
    ]
    for response in responses:
        assert_success(response)


@pytest.mark.parametrize("check", JOURNEY_CHECKS)
def test_short_paths_text_plain_journey(ajs_journey, check):
    check_journey(ajs_journey[0], check)


def _single_event(api: CairnApi, user_id: str, count: int = 1) -> tuple[dict, list[dict]]:
    profile = wait_until(lambda: api.lookup(user_id=user_id))
    assert profile is not None, f"no profile for {user_id}"
    events = wait_until(lambda: (lambda evs: evs if len(evs) >= count else None)(api.events(profile["id"])))
    assert events, f"no events for {user_id}"
    return profile, events


def test_client_clock_skew_is_corrected(cairn_server, acme_api, acme_write_key, run_id):
    """A browser whose clock is an hour fast: timestamp = receivedAt − (sentAt − originalTimestamp)."""
    user_id = f"ajs-skew-{run_id}"
    now = datetime.now(timezone.utc)
    client_now = now + timedelta(hours=1)
    happened = client_now - timedelta(seconds=30)  # 30 s ago, by the client's (wrong) clock
    message = ajs_message(
        {"method": "track", "params": {"userId": user_id, "event": "Skewed", "properties": {"k": "v"},
                                       "timestamp": iso(happened), "messageId": f"ajs-skew-{run_id}"}},
        acme_write_key,
        iso(client_now),
    )
    assert_success(post_text_plain(cairn_server, "/v1/t", message))
    _profile, events = _single_event(acme_api, user_id)
    event = events[0]
    assert event["message_id"] == f"ajs-skew-{run_id}"
    assert_same_instant(event["timestamp"], iso(now - timedelta(seconds=30)), "corrected timestamp", tolerance_s=5)
    assert_same_instant(event["message"]["originalTimestamp"], iso(happened), "originalTimestamp")
    assert_same_instant(event["message"]["sentAt"], iso(client_now), "sentAt")
    assert_same_instant(event["message"]["timestamp"], event["timestamp"], "message.timestamp")


def test_duplicate_message_id_is_dropped(cairn_server, acme_api, acme_write_key, run_id):
    user_id = f"ajs-dup-{run_id}"
    first = {"method": "track", "params": {"userId": user_id, "event": "Clicked", "properties": {"attempt": 1},
                                           "timestamp": iso(datetime.now(timezone.utc) - timedelta(minutes=5)),
                                           "messageId": f"ajs-dup-{run_id}"}}
    retry = copy.deepcopy(first)
    retry["params"]["properties"] = {"attempt": 2}
    other = copy.deepcopy(first)
    other["params"]["messageId"] = f"ajs-dup-{run_id}-other"
    for call in (first, retry, other):
        assert_success(send_ajs(cairn_server, acme_write_key, call))
    profile, events = _single_event(acme_api, user_id, count=2)
    time.sleep(1)  # give a wrongly kept duplicate the time to show up
    events = acme_api.events(profile["id"])
    ids = sorted(event["message_id"] for event in events)
    assert ids == sorted([f"ajs-dup-{run_id}", f"ajs-dup-{run_id}-other"]), f"duplicates not dropped: {ids}"
    kept = next(event for event in events if event["message_id"] == f"ajs-dup-{run_id}")
    assert kept["message"]["properties"] == {"attempt": 1}, "the first delivery should be kept"
    assert acme_api.profile(profile["id"])["event_count"] == 2


def test_trait_with_the_latest_timestamp_wins(cairn_server, acme_api, acme_write_key, run_id):
    user_id = f"ajs-traits-{run_id}"
    now = datetime.now(timezone.utc)
    later, earlier = iso(now - timedelta(minutes=1)), iso(now - timedelta(minutes=10))
    calls = [
        {"method": "identify", "params": {"userId": user_id, "traits": {"plan": "enterprise", "seats": 50},
                                          "timestamp": later, "messageId": f"ajs-traits-{run_id}-1"}},
        # Arrives second but happened first: it must not overwrite plan, and sets what is new.
        {"method": "identify", "params": {"userId": user_id, "traits": {"plan": "free", "color": "red"},
                                          "timestamp": earlier, "messageId": f"ajs-traits-{run_id}-2"}},
    ]
    for call in calls:
        assert_success(send_ajs(cairn_server, acme_write_key, call))
    profile, events = _single_event(acme_api, user_id, count=2)
    profile = acme_api.profile(profile["id"])
    assert profile["traits"].get("plan") == "enterprise", profile["traits"]
    assert profile["traits"].get("seats") == 50, profile["traits"]
    assert profile["traits"].get("color") == "red", profile["traits"]
    times = profile["trait_timestamps"]
    assert_same_instant(times["plan"], later, "trait_timestamps.plan", tolerance_s=5)
    assert_same_instant(times["color"], earlier, "trait_timestamps.color", tolerance_s=5)
    # Newest first by event timestamp, not by arrival.
    assert [event["message_id"] for event in events] == [f"ajs-traits-{run_id}-1", f"ajs-traits-{run_id}-2"]


def test_alias_from_a_second_device_merges_its_profile(cairn_server, acme_api, acme_write_key, run_id):
    """alias(previousId=anonymousId of another device, userId): the device's profile joins the user's."""
    user_id, device = f"ajs-dev-user-{run_id}", f"ajs-dev-anon-{run_id}"
    now = datetime.now(timezone.utc)
    calls = [
        {"method": "identify", "params": {"userId": user_id, "traits": {"plan": "pro"},
                                          "timestamp": iso(now - timedelta(minutes=3)), "messageId": f"ajs-dev-{run_id}-1"}},
        {"method": "page", "params": {"anonymousId": device, "name": "Home", "properties": {"path": "/"},
                                      "timestamp": iso(now - timedelta(minutes=2)), "messageId": f"ajs-dev-{run_id}-2"}},
    ]
    for call in calls:
        assert_success(send_ajs(cairn_server, acme_write_key, call))
    user = wait_until(lambda: acme_api.lookup(user_id=user_id))
    visitor = wait_until(lambda: acme_api.lookup(anonymous_id=device))
    assert user is not None and visitor is not None and user["id"] != visitor["id"]
    alias = {"method": "alias", "params": {"previousId": device, "userId": user_id,
                                           "timestamp": iso(now - timedelta(minutes=1)), "messageId": f"ajs-dev-{run_id}-3"}}
    assert_success(send_ajs(cairn_server, acme_write_key, alias))
    merged = wait_until(lambda: (lambda p: p if p and p["id"] == user["id"] else None)(acme_api.lookup(anonymous_id=device)))
    assert merged is not None, f"after the alias, anonymous_id {device} still resolves to {acme_api.lookup(anonymous_id=device)}"
    profile = acme_api.lookup(user_id=user_id)
    assert visitor["id"] in profile["merged_ids"], profile
    events = acme_api.events(profile["id"])
    assert [event["message_id"] for event in events] == [f"ajs-dev-{run_id}-{n}" for n in (3, 2, 1)]
    assert events[0]["message"]["previousId"] == device and events[0]["message"]["userId"] == user_id
    assert profile["event_count"] == 3


def test_unknown_or_missing_write_key_is_rejected(cairn_server, acme_api, run_id):
    user_id = f"ajs-badkey-{run_id}"
    call = {"method": "track", "params": {"userId": user_id, "event": "Nope", "timestamp": iso(datetime.now(timezone.utc))}}
    unknown = send_ajs(cairn_server, "wk_does_not_exist", call)
    missing_body = ajs_message(call, "x", None)
    del missing_body["writeKey"]
    missing = post_text_plain(cairn_server, "/v1/t", missing_body)
    for response in (unknown, missing):
        assert 400 <= response.status_code < 500, f"{response.status_code}: {response.text[:500]}"
        error = response.json()
        assert isinstance(error.get("code"), str) and error["code"], error
        assert isinstance(error.get("message"), str) and error["message"], error
    assert acme_api.lookup(user_id=user_id) is None


def test_workspaces_are_isolated(cairn_server, acme_api, globex_api, globex_write_key, run_id):
    user_id = f"ajs-globex-{run_id}"
    call = {"method": "identify", "params": {"userId": user_id, "traits": {"company": "Globex"},
                                             "timestamp": iso(datetime.now(timezone.utc)), "messageId": f"ajs-gx-{run_id}"}}
    assert_success(send_ajs(cairn_server, globex_write_key, call))
    profile = wait_until(lambda: globex_api.lookup(user_id=user_id))
    assert profile is not None and profile["workspace"] == "globex", profile
    assert profile["traits"].get("company") == "Globex"
    assert acme_api.lookup(user_id=user_id) is None, "acme's token sees a globex profile"
    response = acme_api.get(f"/api/v1/profiles/{profile['id']}")
    assert 400 <= response.status_code < 500, f"acme's token reads a globex profile: {response.status_code}"
    wrong = CairnApi(cairn_server, "tok_wrong").get("/api/v1/profiles/lookup", user_id=user_id)
    assert 400 <= wrong.status_code < 500 and wrong.json().get("code"), f"{wrong.status_code}: {wrong.text[:300]}"
