"""An email journey end to end through the real binary and a real SMTP server.

A journey sends a welcome email when a customer signs up. The test reads the mail the SMTP server
received (headers, both parts, personalization, tracking links), follows the open pixel and the click
redirect and posts the RFC 8058 one-click unsubscribe against the running server, then checks through
the management API that `Email Opened`, `Email Clicked` and `Email Unsubscribed` are on the profile,
that the journey waiting for the click took its yes path, that the profile is unsubscribed, and that the
next email is suppressed. A second test bounces a customer's mail through the bounce webhook.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import html as html_entities
import json
import re
from urllib.parse import urlparse

import pytest
import requests

from conftest import CALLBACK_SECRET, FEED_SECRET, wait_until

TARGET = "https://shop.example.com/welcome?ref=email&x=1"

TEMPLATE = {
    "id": "welcome",
    "name": "Welcome",
    "channel": "email",
    "default_locale": "en",
    "variants": {
        "en": {
            "subject": "Welcome, {{ profile.first_name }}!",
            "html": (
                "<html><body><p>Hello {{ profile.first_name }},</p>"
                f'<p><a href="{TARGET.replace("&", "&amp;")}">Start shopping</a></p>'
                '<p><a href="{{ message.unsubscribe_url }}">Unsubscribe</a></p></body></html>'
            ),
            "text": "Hello {{ profile.first_name }}, start shopping: " + TARGET,
        }
    },
}

JOURNEY = {
    "id": "welcome",
    "name": "Welcome",
    "entry": {"event": {"name": "Signed Up"}},
    "re_entry": "concurrent",
    "start": "welcome_email",
    "steps": [
        {"id": "welcome_email", "type": "send", "channel": "email", "template": "welcome", "next": "clicked"},
        {"id": "clicked", "type": "engagement_split", "send_step": "welcome_email", "engagement": "clicked",
         "window": "1d", "on_yes": "mark", "on_no": "done"},
        {"id": "mark", "type": "update_profile", "set": {"clicked_welcome": True}, "next": "done"},
        {"id": "done", "type": "exit"},
    ],
}


def ok(response: requests.Response, status: int = 200) -> dict:
    assert response.status_code == status, f"{response.request.method} {response.url}: {response.status_code} {response.text[:1000]}"
    return response.json()


def profile_id(cairn, user_id: str) -> str:
    return ok(cairn.api("GET", "/api/v1/profiles/lookup", params={"user_id": user_id}))["id"]


def event_names(cairn, profile: str) -> list[str]:
    body = ok(cairn.api("GET", f"/api/v1/profiles/{profile}/events", params={"limit": 200}))
    return [event["name"] for event in body["events"]]


@pytest.fixture(scope="module")
def welcome_journey(cairn):
    """The customers and the published welcome template and journey."""
    # The catalog learns the traits and the event before the template and journey are published.
    for user, name in [("ann", "Ann"), ("bob", "Bob")]:
        cairn.track({"type": "identify", "userId": user, "traits": {"email": f"{user}@example.com", "first_name": name}})
    cairn.track({"type": "track", "userId": "warm-up", "event": "Signed Up"})
    saved = ok(cairn.api("PUT", "/api/v1/templates/welcome", json=TEMPLATE))
    assert saved["errors"] == [], saved
    ok(cairn.api("POST", "/api/v1/templates/welcome/publish"), 201)
    ok(cairn.api("PUT", "/api/v1/journeys/welcome", json=JOURNEY), 201)
    ok(cairn.api("POST", "/api/v1/journeys/welcome/publish"), 201)


def sign_up_and_receive(cairn, smtp_sink, user: str, message_id: str):
    """Signs `user` up and answers the welcome mail the SMTP server received for them."""
    cairn.track({"type": "track", "userId": user, "event": "Signed Up", "messageId": message_id})
    address = f"{user}@example.com"
    assert wait_until(lambda: smtp_sink.messages(to=address)), f"no mail arrived for {address}\n{cairn.log_tail()}"
    [path] = smtp_sink.messages(to=address)
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


def decided_skip(cairn, profile: str, reason: str | None = None):
    """Polls until the profile's newest message is decided `skip` (for `reason` when given)."""

    def skipped():
        messages = ok(cairn.api("GET", f"/api/v1/profiles/{profile}/messages"))["messages"]
        newest = messages[0].get("delivery", {}) if len(messages) >= 2 else {}
        if newest.get("decision") != "skip":
            return None
        return (reason is None or reason in json.dumps(newest)) and messages

    messages = wait_until(skipped)
    assert messages, (
        f"the email was not decided skip ({reason}): "
        f"{ok(cairn.api('GET', f'/api/v1/profiles/{profile}/messages'))}\n{cairn.log_tail()}"
    )


def test_a_journey_email_is_received_tracked_and_unsubscribed(cairn, smtp_sink, welcome_journey):
    ann = profile_id(cairn, "ann")
    mail = sign_up_and_receive(cairn, smtp_sink, "ann", "sign-up-ann-1")

    # Headers.
    assert mail["Subject"] == "Welcome, Ann!"
    assert "ann@example.com" in mail["To"]
    assert re.fullmatch(r"<[^@<>]+@mail\.shop\.example\.com>", mail["Message-ID"]), mail["Message-ID"]
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe_urls = re.findall(r"<(https?://[^>]+)>", mail["List-Unsubscribe"])
    assert len(unsubscribe_urls) == 1, mail["List-Unsubscribe"]
    unsubscribe_url = unsubscribe_urls[0]
    assert unsubscribe_url.startswith(f"{cairn.base_url}/u/"), unsubscribe_url

    # Both parts, personalized; the HTML's links are signed redirects and it carries the pixel.
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "Hello Ann, start shopping" in text
    assert "Hello Ann," in html
    hrefs = [html_entities.unescape(href) for href in re.findall(r'href="([^"]+)"', html)]
    clicks = [href for href in hrefs if href.startswith(f"{cairn.base_url}/t/c/")]
    assert len(clicks) == 1, hrefs
    assert unsubscribe_url in hrefs, "the body's unsubscribe link is the header's, not a click redirect"
    pixels = [html_entities.unescape(src) for src in re.findall(r'<img src="([^"]+/t/o/[^"]+)"', html)]
    assert len(pixels) == 1, html

    # Follow the pixel (twice: one open is recorded), the click and the one-click unsubscribe.
    for _ in range(2):
        pixel = requests.get(pixels[0], timeout=10)
        assert pixel.status_code == 200 and pixel.headers["Content-Type"] == "image/gif"
        assert pixel.content.startswith(b"GIF89a")
    click = requests.get(clicks[0], allow_redirects=False, timeout=10)
    assert click.status_code == 302, click.text
    assert click.headers["Location"] == TARGET
    page = requests.get(unsubscribe_url, timeout=10)
    assert page.status_code == 200 and 'value="One-Click"' in page.text
    one_click = requests.post(
        unsubscribe_url,
        data="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert one_click.status_code == 200, one_click.text

    # Everything is on the profile, which is unsubscribed.
    wanted = {"Email Sent", "Email Opened", "Email Clicked", "Email Unsubscribed"}
    names = wait_until(lambda: (names := event_names(cairn, ann)) and wanted <= set(names) and names)
    assert names and wanted <= set(names), f"{names}\n{cairn.log_tail()}"
    assert names.count("Email Opened") == 1, names
    events = ok(cairn.api("GET", f"/api/v1/profiles/{ann}/events", params={"limit": 200}))["events"]
    clicked = next(event for event in events if event["name"] == "Email Clicked")
    assert clicked["message"]["properties"]["url"] == TARGET, clicked
    consent = ok(cairn.api("GET", f"/api/v1/profiles/{ann}/consent"))
    assert consent["channels"]["email"]["status"] == "opted_out", consent
    # The journey waiting for a click on its email took the yes path.
    profile = wait_until(lambda: (p := ok(cairn.api("GET", f"/api/v1/profiles/{ann}"))) and p["traits"].get("clicked_welcome") and p)
    assert profile, f"the click did not reach the journey: {ok(cairn.api('GET', f'/api/v1/profiles/{ann}'))}"
    cairn_message_id = re.fullmatch(r"<([^@<>]+)@[^<>]+>", mail["Message-ID"]).group(1)
    sent = ok(cairn.api("GET", "/api/v1/deliveries", params={"state": "sent"}))["deliveries"]
    assert cairn_message_id in [delivery["message_id"] for delivery in sent], sent

    # A second sign-up enrolls again, but the email is suppressed: decided `skip`, never sent.
    cairn.track({"type": "track", "userId": "ann", "event": "Signed Up", "messageId": "sign-up-ann-2"})
    decided_skip(cairn, ann)
    assert len(smtp_sink.messages(to="ann@example.com")) == 1, "the suppressed email never reached the SMTP server"


def test_a_hard_bounce_webhook_suppresses_the_address(cairn, smtp_sink, welcome_journey):
    bob = profile_id(cairn, "bob")
    mail = sign_up_and_receive(cairn, smtp_sink, "bob", "sign-up-bob-1")
    message_id = re.fullmatch(r"<([^@<>]+)@[^<>]+>", mail["Message-ID"]).group(1)
    bounce = {
        "type": "bounced",
        "message_id": message_id,
        "recipient": "bob@example.com",
        "timestamp": "2026-01-02T03:04:05Z",
        "bounce_type": "hard",
        "code": "5.1.1",
        "reason": "no such user",
    }
    url = f"{cairn.base_url}/hooks/feedback"
    refused = requests.post(url, json=bounce, auth=("cairn", "wrong"), timeout=10)
    assert refused.status_code == 403 and refused.json()["code"] == "invalid_signature", refused.text
    malformed = requests.post(url, data="{", auth=("cairn", CALLBACK_SECRET), timeout=10)
    assert malformed.status_code == 400 and malformed.json()["code"] == "invalid_provider_callback"
    accepted = requests.post(url, json=bounce, auth=("cairn", CALLBACK_SECRET), timeout=10)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json() == {"recorded": 1, "unattributed": 0}

    names = wait_until(lambda: (names := event_names(cairn, bob)) and "Email Bounced" in names and names)
    assert names and names.count("Email Bounced") == 1, names
    consent = ok(cairn.api("GET", f"/api/v1/profiles/{bob}/consent"))
    assert consent["undeliverable_addresses"] == ["bob@example.com"], consent

    cairn.track({"type": "track", "userId": "bob", "event": "Signed Up", "messageId": "sign-up-bob-2"})
    decided_skip(cairn, bob, "undeliverable_address")
    assert len(smtp_sink.messages(to="bob@example.com")) == 1


def test_the_activity_feed_sees_the_entry_the_email_and_the_exit(cairn, smtp_sink, welcome_journey, activity_feed):
    cairn.track({"type": "identify", "userId": "dan", "traits": {"email": "dan@example.com", "first_name": "Dan"}})
    mail = sign_up_and_receive(cairn, smtp_sink, "dan", "sign-up-dan-1")
    dan = profile_id(cairn, "dan")
    html = mail.get_body(("html",)).get_content()
    [click] = [html_entities.unescape(href) for href in re.findall(r'href="([^"]+/t/c/[^"]+)"', html)]
    assert requests.get(click, allow_redirects=False, timeout=10).status_code == 302

    kinds = ["journey_entered", "journey_exited", "message_sent"]
    items = wait_until(lambda: (items := activity_feed.items(dan)) and sorted(i["type"] for i in items) == kinds and items)
    assert items, f"{activity_feed.items(dan)}\n{cairn.log_tail()}"
    by_kind = {item["type"]: item for item in items}
    assert all(item["journey_id"] == "welcome" and item["workspace"] == "shop" for item in items), items
    assert by_kind["journey_entered"]["step"] == "welcome_email"
    message_id = re.fullmatch(r"<([^@<>]+)@[^<>]+>", mail["Message-ID"]).group(1)
    assert by_kind["message_sent"]["message_id"] == message_id
    assert by_kind["message_sent"]["channel"] == "email"
    assert by_kind["journey_exited"]["reason"] == "completed"
    assert by_kind["journey_exited"]["step"] == "done"

    # Every post is signed with the subscription's secret and carries the item id as idempotency key.
    for headers, body in list(activity_feed.received):
        headers = {name.lower(): value for name, value in headers.items()}
        parts = dict(part.split("=", 1) for part in headers["cairn-signature"].split(","))
        expected = hmac.new(FEED_SECRET.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(parts["v1"], expected), headers
        assert headers["idempotency-key"] == json.loads(body)["id"]


def test_forged_links_are_refused_by_the_running_server(cairn):
    forged = f"{cairn.base_url}/t/c/dDEKYwptc2cKcHJvZgowCmh0dHBzOi8vZXZpbC5leGFtcGxlLmNvbQ.AAAAAAAAAAAAAAAAAAAAAA"
    response = requests.get(forged, allow_redirects=False, timeout=10)
    assert response.status_code == 404
    assert "Location" not in response.headers
    assert response.json()["code"] == "invalid_tracking_link"
    parsed = urlparse(forged)
    assert parsed.path.startswith("/t/c/")
