"""A small client for Cairn's management API, as the client-compatibility tests use it."""

from __future__ import annotations

import os
import time
from typing import Any, Callable

import requests

WAIT_SECONDS = float(os.environ.get("CAIRN_CLIENT_TEST_WAIT", "20"))


class ApiError(AssertionError):
    pass


class CairnApi:
    def __init__(self, base_url: str, token: str):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.session.get(f"{self.base_url}{path}", params=params, timeout=10)

    def _json(self, response: requests.Response) -> Any:
        if response.status_code != 200:
            raise ApiError(
                f"GET {response.request.url} answered {response.status_code}: {response.text[:1000]}"
            )
        try:
            return response.json()
        except ValueError as error:
            raise ApiError(f"GET {response.request.url} answered non-JSON: {response.text[:1000]}") from error

    def lookup(self, **identifier: str) -> dict | None:
        """`GET /api/v1/profiles/lookup?user_id=…` (or anonymous_id / email); None when there is no profile."""
        assert len(identifier) == 1, identifier
        response = self.get("/api/v1/profiles/lookup", **identifier)
        if response.status_code == 404:
            body = response.json()
            assert body.get("code") == "profile_not_found", (
                f"404 from lookup {identifier} should have code profile_not_found: {response.text[:500]}"
            )
            assert isinstance(body.get("message"), str) and body["message"], response.text[:500]
            return None
        return self._json(response)

    def profile(self, profile_id: str) -> dict:
        return self._json(self.get(f"/api/v1/profiles/{profile_id}"))

    def events_page(self, profile_id: str, limit: int, before: str | None = None) -> dict:
        params: dict[str, Any] = {"limit": limit}
        if before is not None:
            params["before"] = before
        return self._json(self.get(f"/api/v1/profiles/{profile_id}/events", **params))

    def events(self, profile_id: str, limit: int = 100, max_pages: int = 100) -> list[dict]:
        """Every event of a profile, newest first, following `next_before` cursors."""
        events: list[dict] = []
        before = None
        for _ in range(max_pages):
            page = self.events_page(profile_id, limit, before)
            assert isinstance(page.get("events"), list), f"events response without an `events` list: {page}"
            assert len(page["events"]) <= limit, f"asked for limit={limit}, got {len(page['events'])} events"
            events.extend(page["events"])
            before = page.get("next_before")
            if before is None or not page["events"]:
                return events
        raise ApiError(f"events of {profile_id} did not end after {max_pages} pages of {limit}")


def wait_until(condition: Callable[[], Any], timeout: float = WAIT_SECONDS, interval: float = 0.25) -> Any:
    """Polls `condition` until it returns something truthy; returns its last value (falsy on timeout).

    API errors while polling count as "not yet"; the caller asserts on the final state itself, so a
    timeout ends in a precise assertion failure instead of a bare "timed out".
    """
    deadline = time.monotonic() + timeout
    value = None
    while True:
        try:
            value = condition()
        except (ApiError, AssertionError, requests.RequestException, ValueError):
            value = None
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
