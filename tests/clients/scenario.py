"""The journey every client library sends, and the checks that everything it sent arrived.

A scenario is a list of calls, each `{"method": "identify"|"track"|…, "params": {…}}` with the
parameters in the Segment spec's camelCase (`userId`, `anonymousId`, `messageId`, …) and
`timestamp` as an ISO-8601 string. Each driver (Python libraries, the Node script, the raw
analytics.js-style requests) turns those calls into its own library's calls unchanged; then
`Journey` reads the profile and its events back through the management API and compares
every field with what was sent.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from cairn_api import CairnApi, wait_until

BATCH_EVENT = "Batch Item"


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: Any, what: str = "timestamp") -> datetime:
    assert isinstance(text, str) and text, f"{what} should be an ISO-8601 string, got {text!r}"
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise AssertionError(f"{what} is not ISO-8601: {text!r}") from error
    assert moment.tzinfo is not None, f"{what} has no time zone: {text!r}"
    return moment


def to_datetime(text: str) -> datetime:
    """The datetime a Python library must be given for an ISO string of the scenario."""
    return parse_time(text)


def assert_same_instant(actual: Any, expected: str, what: str, tolerance_s: float = 0.0011) -> None:
    got = parse_time(actual, what)
    want = parse_time(expected, what)
    assert abs((got - want).total_seconds()) <= tolerance_s, (
        f"{what}: expected {expected} (±{tolerance_s}s), got {actual}"
    )


def assert_fields(actual: Any, expected: dict, what: str) -> None:
    """Every key of `expected` is in `actual` with an equal value (the library may add more keys)."""
    assert isinstance(actual, dict), f"{what} should be an object, got {actual!r}"
    missing = [key for key in expected if key not in actual]
    assert not missing, f"{what} lacks {missing}; got {actual!r}"
    different = {key: (expected[key], actual[key]) for key in expected if actual[key] != expected[key]}
    assert not different, f"{what} differs (key: (sent, stored)): {different!r}"


@dataclass
class Scenario:
    prefix: str
    run: str
    user_id: str
    anonymous_id: str
    legacy_id: str
    group_id: str
    email: str
    calls: list[dict]
    batch_calls: list[dict]
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def all_calls(self) -> list[dict]:
        return self.calls + self.batch_calls

    def call(self, method: str, event: str | None = None) -> dict:
        for call in self.calls:
            if call["method"] == method and (event is None or call["params"].get("event") == event):
                return call
        raise KeyError((method, event))

    def identify_traits(self) -> dict:
        return self.call("identify")["params"]["traits"]


def build_scenario(prefix: str, run: str, batch_size: int = 0) -> Scenario:
    """The calls of one journey. Ids embed `prefix` (the library) and `run` (the test session)."""
    user_id = f"{prefix}-user-{run}"
    anonymous_id = f"{prefix}-anon-{run}"
    legacy_id = f"{prefix}-legacy-{run}"
    group_id = f"{prefix}-org-{run}"
    email = f"Ada.{prefix}.{run}@Example.COM"
    # Explicit event times two hours back, one minute apart: the events endpoint must order by them.
    base = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)
    step = iter(range(100))

    def at() -> str:
        return iso(base + timedelta(minutes=next(step), milliseconds=123))

    def context(call: str, **extra: Any) -> dict:
        return {
            "ip": "203.0.113.7",
            "locale": "en-GB",
            "timezone": "Europe/London",
            "campaign": {"name": "spring-sale", "source": "newsletter", "medium": "email"},
            "device": {"id": f"device-{run}", "manufacturer": "Apple", "model": "iPhone15,2"},
            "cairnTest": {"run": run, "call": call, "library": prefix},
            **extra,
        }

    integrations = {"All": False, "Mixpanel": True, "Amplitude": {"sessionId": 1700000000123}}

    calls = [
        {
            "method": "track",
            "params": {
                "anonymousId": anonymous_id,
                "event": "Product Viewed",
                "properties": {"product_id": "sku-42", "price": 19.99, "variant": "blue", "in_stock": True},
                "context": context("anonymous-track"),
                "integrations": integrations,
                "timestamp": at(),
                "messageId": f"{prefix}-{run}-m01-anon-track",
            },
        },
        {
            "method": "track",
            "params": {
                "userId": legacy_id,
                "event": "Legacy Event",
                "properties": {"source": "old-crm", "legacy": True},
                "context": context("legacy-track"),
                "integrations": integrations,
                "timestamp": at(),
                "messageId": f"{prefix}-{run}-m02-legacy-track",
            },
        },
        {
            "method": "identify",
            "params": {
                "userId": user_id,
                "anonymousId": anonymous_id,
                "traits": {
                    "name": "Ada Lovelace",
                    "firstName": "Ada",
                    "email": email,
                    "plan": "pro",
                    "age": 36,
                    "vip": True,
                    "score": 9.75,
                    "tags": ["beta", "early-adopter"],
                    "address": {"city": "London", "country": "GB", "postalCode": "N1 9GU"},
                    "motto": "Zoë – 東京 🚀 \"quoted\"",
                },
                "context": context("identify"),
                "integrations": integrations,
                "timestamp": at(),
                "messageId": f"{prefix}-{run}-m03-identify",
            },
        },
        {
            "method": "track",
            "params": {
                "userId": user_id,
                "event": "Order Completed",
                "properties": {
                    "order_id": f"ord-{run}",
                    "revenue": 42.5,
                    "currency": "EUR",
                    "coupon": None,
                    "gift": False,
                    "quantity": 0,
                    "products": [
                        {"sku": "SKU-1", "quantity": 2, "price": 10.25},
                        {"sku": "SKU-2", "quantity": 1, "price": 22.0, "tags": ["a", "b"]},
                    ],
                },
                "context": context("track", userAgent="Mozilla/5.0 (cairn-client-tests)"),
                "integrations": integrations,
                "timestamp": at(),
                "messageId": f"{prefix}-{run}-m04-track",
            },
        },
        {
            "method": "page",
            "params": {
                "userId": user_id,
                "category": "Docs",
                "name": "Pricing",
                "properties": {
                    "url": "https://example.com/pricing?plan=pro",
                    "path": "/pricing",
                    "title": "Pricing – Example",
                    "referrer": "https://www.google.com/",
                },
                "context": context("page"),
                "integrations": integrations,
                "timestamp": at(),
                "messageId": f"{prefix}-{run}-m05-page",
            },
        },
        {
            "method": "screen",
            "params": {
                "userId": user_id,
                "category": "Onboarding",
                "name": "Home Screen",
                "properties": {"variation": "dark", "seconds_visible": 12},
                "context": context("screen", app={"name": "Example", "version": "3.2.1", "build": "321"}),
                "integrations": integrations,
                "timestamp": at(),
                "messageId": f"{prefix}-{run}-m06-screen",
            },
        },
        {
            "method": "group",
            "params": {
                "userId": user_id,
                "groupId": group_id,
                "traits": {"name": "Acme Inc", "employees": 120, "industry": "Rockets"},
                "context": context("group"),
                "integrations": integrations,
                "timestamp": at(),
                "messageId": f"{prefix}-{run}-m07-group",
            },
        },
        {
            "method": "alias",
            "params": {
                "userId": user_id,
                "previousId": legacy_id,
                "context": context("alias"),
                "integrations": integrations,
                "timestamp": at(),
                "messageId": f"{prefix}-{run}-m08-alias",
            },
        },
    ]
    batch_base = base + timedelta(minutes=30)
    batch_calls = [
        {
            "method": "track",
            "params": {
                "userId": user_id,
                "event": BATCH_EVENT,
                "properties": {"index": index, "run": run, "label": f"item {index}"},
                "context": context("batch"),
                # Sent in index order, but each happened before the previous one: arrival order is
                # the reverse of event-time order.
                "timestamp": iso(batch_base + timedelta(seconds=batch_size - index, milliseconds=7)),
                # No messageId: the library generates one.
            },
        }
        for index in range(batch_size)
    ]
    return Scenario(prefix, run, user_id, anonymous_id, legacy_id, group_id, email, calls, batch_calls)


def python_kwargs(call: dict) -> dict:
    """A scenario call as keyword arguments of the Segment / RudderStack Python libraries."""
    names = {
        "userId": "user_id",
        "anonymousId": "anonymous_id",
        "messageId": "message_id",
        "groupId": "group_id",
        "previousId": "previous_id",
    }
    kwargs = {}
    for key, value in copy.deepcopy(call["params"]).items():
        if key == "timestamp":
            value = to_datetime(value)
        kwargs[names.get(key, key)] = value
    return kwargs


@dataclass
class Library:
    """What a library adds to each message, for the checks."""

    name: str  # context.library.name
    version: str | None  # context.library.version (None: not checked)
    identify_traits_in_context: bool = False  # RudderStack puts identify traits in context.traits
    generated_message_id: str = r".+"  # regex for message ids the library generates
    extra_context: dict = field(default_factory=dict)  # further context fields every message carries
    extra_message: Callable[[dict, dict], None] | None = None  # extra checks (call, stored message)


def _expected_name(call: dict) -> str | None:
    params = call["params"]
    if call["method"] == "track":
        return params["event"]
    if call["method"] in ("page", "screen"):
        return params.get("name")
    return None


def check_message(event: dict, call: dict, library: Library, scenario: Scenario) -> None:
    """Compares one stored event with the call that produced it, field by field."""
    params = call["params"]
    method = call["method"]
    label = f"{method} {params.get('event') or params.get('name') or ''} ({params.get('messageId', 'generated id')})"
    message = event.get("message")
    assert isinstance(message, dict), f"{label}: event has no message object: {event!r}"

    assert event["type"] == method, f"{label}: event type {event['type']!r}"
    assert message.get("type") == method, f"{label}: message.type {message.get('type')!r}"
    if "messageId" in params:
        assert event["message_id"] == params["messageId"], f"{label}: message_id {event['message_id']!r}"
    else:
        assert isinstance(event["message_id"], str) and re.fullmatch(
            library.generated_message_id, event["message_id"]
        ), f"{label}: generated message_id {event['message_id']!r} !~ {library.generated_message_id}"
    assert message.get("messageId") == event["message_id"], f"{label}: message.messageId {message.get('messageId')!r}"
    assert event.get("name") == _expected_name(call), f"{label}: event name {event.get('name')!r}"

    for key in ("userId", "anonymousId", "event", "name", "category", "groupId", "previousId"):
        if key in params:
            assert message.get(key) == params[key], f"{label}: message.{key} = {message.get(key)!r}, sent {params[key]!r}"
    if "properties" in params:
        assert_fields(message.get("properties"), params["properties"], f"{label}: properties")
    if "traits" in params:
        if method == "identify" and library.identify_traits_in_context:
            assert_fields((message.get("context") or {}).get("traits"), params["traits"], f"{label}: context.traits")
        else:
            assert_fields(message.get("traits"), params["traits"], f"{label}: traits")
    assert_fields(message.get("context"), params["context"], f"{label}: context")
    assert_fields(message.get("context"), library.extra_context, f"{label}: context (library's own)")
    lib = (message.get("context") or {}).get("library")
    assert isinstance(lib, dict) and lib.get("name") == library.name, (
        f"{label}: context.library should name {library.name!r}, got {lib!r}"
    )
    if library.version is not None:
        assert lib.get("version") == library.version, f"{label}: context.library.version {lib.get('version')!r}"
    if "integrations" in params:
        assert_fields(message.get("integrations"), params["integrations"], f"{label}: integrations")
    assert "writeKey" not in message, f"{label}: the stored message still carries the writeKey"

    # Times: the client's own time is kept as originalTimestamp; `timestamp` is the skew-corrected time,
    # which on one machine (no skew) is the sent time give or take the request's latency.
    sent = params["timestamp"]
    assert_same_instant(message.get("originalTimestamp"), sent, f"{label}: message.originalTimestamp")
    assert_same_instant(event.get("timestamp"), sent, f"{label}: event timestamp", tolerance_s=5)
    assert_same_instant(message.get("timestamp"), event["timestamp"], f"{label}: message.timestamp")
    assert_same_instant(message.get("receivedAt"), event["received_at"], f"{label}: message.receivedAt")
    now = datetime.now(timezone.utc)
    for key, value in (("received_at", event["received_at"]), ("message.sentAt", message.get("sentAt"))):
        moment = parse_time(value, f"{label}: {key}")
        assert scenario.started_at - timedelta(seconds=5) <= moment <= now + timedelta(seconds=5), (
            f"{label}: {key} {value} is not within this test's run ({iso(scenario.started_at)} .. {iso(now)})"
        )
    if library.extra_message is not None:
        library.extra_message(call, message)


def _event_key(event: dict, explicit_ids: set[str]) -> str:
    if event.get("message_id") in explicit_ids:
        return event["message_id"]
    message = event.get("message") or {}
    if message.get("event") == BATCH_EVENT:
        return f"batch:{(message.get('properties') or {}).get('index')}"
    return f"unexpected:{event.get('message_id')}"


def _call_key(call: dict) -> str:
    params = call["params"]
    if "messageId" in params:
        return params["messageId"]
    return f"batch:{params['properties']['index']}"


def wait_for_scenario(api: CairnApi, scenario: Scenario, calls: list[dict] | None = None) -> None:
    """Waits until the user's profile has every event of `calls` and all ids resolve to it.

    Before the alias is sent, the legacy user's events are on its own profile: then only that
    profile's existence is awaited.
    """
    calls = scenario.all_calls if calls is None else calls
    aliased = any(call["method"] == "alias" for call in calls)
    legacy = [call for call in calls if call["params"].get("userId") == scenario.legacy_id]
    wanted = {_call_key(call) for call in calls if aliased or call not in legacy}
    explicit = {call["params"]["messageId"] for call in calls if "messageId" in call["params"]}

    def ready() -> bool:
        profile = api.lookup(user_id=scenario.user_id)
        if profile is None:
            return False
        others = [{"anonymous_id": scenario.anonymous_id}, {"email": scenario.email.lower()}]
        if aliased:
            others.append({"user_id": scenario.legacy_id})
        for identifier in others:
            other = api.lookup(**identifier)
            if other is None or other["id"] != profile["id"]:
                return False
        if legacy and not aliased and api.lookup(user_id=scenario.legacy_id) is None:
            return False
        keys = {_event_key(event, explicit) for event in api.events(profile["id"])}
        return wanted <= keys

    wait_until(ready)


@dataclass
class Journey:
    """A scenario that a library has sent; its checks read what Cairn made of it (once, cached)."""

    api: CairnApi
    scenario: Scenario
    library: Library
    events_page_size: int = 100
    # The user's and the legacy user's profiles just before the alias, when the test could look.
    before_alias: tuple[dict, dict] | None = None
    _state: dict | None = None

    def state(self) -> dict:
        if self._state is None:
            try:
                self._state = {"ok": self._collect()}
            except AssertionError as error:
                self._state = {"error": error}
        if "error" in self._state:
            raise AssertionError(f"reading the journey back failed: {self._state['error']}")
        return self._state["ok"]

    def _collect(self) -> dict:
        scenario = self.scenario
        wait_for_scenario(self.api, scenario)
        profile = self.api.lookup(user_id=scenario.user_id)
        assert profile is not None, f"no profile for user_id {scenario.user_id}"
        explicit = {call["params"]["messageId"] for call in scenario.calls}
        events = self.api.events(profile["id"], limit=self.events_page_size)
        legacy_profile = self.api.lookup(user_id=scenario.legacy_id)
        legacy_events = []
        if legacy_profile is not None and legacy_profile["id"] != profile["id"]:
            legacy_events = self.api.events(legacy_profile["id"])
        # Every event, wherever it is: the user's profile, plus the legacy profile if the alias did not merge.
        found: dict[str, dict] = {}
        for event in events + legacy_events:
            key = _event_key(event, explicit)
            assert key not in found, f"event {key} returned twice"
            found[key] = event
        return {
            "profile": profile,
            "fetched": self.api.profile(profile["id"]),
            "events": events,
            "legacy_profile": legacy_profile,
            "found": found,
            "explicit": explicit,
        }

    # The checks, one per aspect, so that one broken rule does not hide the others.

    def check_fields(self) -> None:
        """Every message arrived with every field the library sent."""
        state = self.state()
        found = state["found"]
        missing = [_call_key(call) for call in self.scenario.all_calls if _call_key(call) not in found]
        assert not missing, f"no event found for {missing}"
        for call in self.scenario.all_calls:
            event = found[_call_key(call)]
            check_message(event, call, self.library, self.scenario)
            assert isinstance(event.get("seq"), int), f"{_call_key(call)}: seq {event.get('seq')!r}"
        generated = [found[_call_key(call)]["message_id"] for call in self.scenario.batch_calls]
        assert len(set(generated)) == len(generated), f"library-generated message ids repeat: {generated}"

    def check_profile_traits(self) -> None:
        """The identify's traits are on the profile, each with the identify's event time."""
        state = self.state()
        profile, fetched = state["profile"], state["fetched"]
        pid = profile["id"]
        assert isinstance(pid, str) and pid.startswith("prof_"), f"profile id {pid!r}"
        assert fetched.get("id") == pid, f"GET /profiles/{pid} returned id {fetched.get('id')!r}"
        assert profile.get("workspace") == "acme", f"profile workspace {profile.get('workspace')!r}"
        assert isinstance(profile.get("partition"), int), f"profile partition {profile.get('partition')!r}"
        for key in ("created_at", "updated_at"):
            parse_time(profile.get(key), f"profile {key}")
        traits = self.scenario.identify_traits()
        assert_fields(profile.get("traits"), traits, "profile traits")
        assert_fields(fetched.get("traits"), traits, "GET /profiles/{id} traits")
        identify = state["found"].get(_call_key(self.scenario.call("identify")))
        assert identify is not None, "the identify event is missing"
        trait_times = profile.get("trait_timestamps")
        assert isinstance(trait_times, dict), f"trait_timestamps {trait_times!r}"
        for key in traits:
            assert key in trait_times, f"trait_timestamps lacks {key!r}: {trait_times}"
            assert_same_instant(trait_times[key], identify["timestamp"], f"trait_timestamps[{key!r}]")

    def check_identify_links(self) -> None:
        """identify linked the anonymous id to the user; the email trait is an identifier, lower-cased."""
        profile = self.state()["profile"]
        for identifier in ({"anonymous_id": self.scenario.anonymous_id}, {"email": self.scenario.email.lower()}):
            other = self.api.lookup(**identifier)
            assert other is not None, f"lookup {identifier} found no profile"
            assert other["id"] == profile["id"], f"lookup {identifier} gave {other['id']}, user_id gave {profile['id']}"
        identifiers = {(item.get("type"), item.get("value")) for item in profile.get("identifiers", [])}
        for expected in (
            ("user_id", self.scenario.user_id),
            ("anonymous_id", self.scenario.anonymous_id),
            ("email", self.scenario.email.lower()),
        ):
            assert expected in identifiers, f"profile identifiers lack {expected}: {profile.get('identifiers')}"

    def check_alias_merges(self) -> None:
        """alias(previousId=legacy user id, userId=user) merges the legacy user's profile with the user's."""
        state = self.state()
        scenario, profile, legacy = self.scenario, state["profile"], state["legacy_profile"]
        pid = profile["id"]
        alias = f"alias(previousId={scenario.legacy_id!r}, userId={scenario.user_id!r})"
        assert legacy is not None, f"lookup user_id={scenario.legacy_id} found no profile"
        assert legacy["id"] == pid, (
            f"after {alias}, lookup user_id={scenario.legacy_id} gives {legacy['id']} but "
            f"user_id={scenario.user_id} gives {pid}: the profiles were not merged"
        )
        identifiers = {(item.get("type"), item.get("value")) for item in profile.get("identifiers", [])}
        assert ("user_id", scenario.legacy_id) in identifiers, (
            f"after {alias} the profile's identifiers lack the previous id: {profile.get('identifiers')}"
        )
        merged = profile.get("merged_ids")
        assert isinstance(merged, list) and merged, f"after {alias} merged_ids is {merged!r}"
        assert all(isinstance(m, str) and m.startswith("prof_") and m != pid for m in merged), merged
        keys = {_event_key(event, state["explicit"]) for event in state["events"]}
        wanted = [_call_key(call) for call in scenario.all_calls]
        assert set(wanted) <= keys, f"after {alias} the events endpoint lacks {sorted(set(wanted) - keys)}"
        for event in state["events"]:
            # An event recorded before a merge may keep the id of the profile that was merged away.
            assert event.get("profile_id") in {pid, *merged}, (
                f"{_event_key(event, state['explicit'])}: profile_id {event.get('profile_id')} is neither {pid} nor merged {merged}"
            )
        if self.before_alias is not None:
            user_before, legacy_before = self.before_alias
            ids = {user_before["id"], legacy_before["id"]}
            assert pid in ids, f"the merged profile {pid} is neither of the two before the alias: {ids}"
            (other,) = ids - {pid}
            assert other in merged, f"{other} (merged away) not in merged_ids {merged}"

    def check_timeline(self) -> None:
        """The profile's events come newest first by event timestamp (not arrival), and event_count matches."""
        state = self.state()
        events, explicit = state["events"], state["explicit"]
        keys = [_event_key(event, explicit) for event in events]
        assert len(keys) == len(set(keys)), f"duplicate events: {keys}"
        order = {
            _call_key(call): parse_time(call["params"]["timestamp"]) for call in self.scenario.all_calls
        }
        unexpected = [key for key in keys if key not in order]
        assert not unexpected, f"unexpected events on the profile: {unexpected}"
        expected = sorted(keys, key=lambda key: order[key], reverse=True)
        assert keys == expected, f"events should be newest first by event timestamp:\n expected {expected}\n got      {keys}"
        assert len(keys) >= len(self.scenario.all_calls) - 1, f"only {len(keys)} events on the user's profile"
        assert state["profile"].get("event_count") == len(events), (
            f"profile event_count {state['profile'].get('event_count')} but the events endpoint returned {len(events)}"
        )


JOURNEY_CHECKS = ["fields", "profile_traits", "identify_links", "alias_merges", "timeline"]


def check_journey(journey: Journey, check: str) -> None:
    getattr(journey, f"check_{check}")()
