"""Watches the HTTP requests a Python library makes through its `requests.Session`, without changing them.

Both Segment's and RudderStack's Python libraries send through a module-level `requests.Session`
(`…analytics.request._session`); a response hook records each request's path, headers, decoded body
and the server's answer, so a test can tell how the library really talked to Cairn (batch sizes,
gzip, auth) and that Cairn answered `{"success": true}`.
"""

from __future__ import annotations

import gzip
import json
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests


@dataclass
class Exchange:
    path: str
    headers: dict
    body: dict
    status: int
    answer: str

    @property
    def batch_size(self) -> int:
        return len(self.body.get("batch", [])) if isinstance(self.body, dict) else 0


@contextmanager
def observe(session: requests.Session):
    exchanges: list[Exchange] = []

    def hook(response: requests.Response, *args, **kwargs):
        request = response.request
        raw = request.body or b""
        if isinstance(raw, str):
            raw = raw.encode()
        if request.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"_undecodable": raw[:200].decode(errors="replace")}
        exchanges.append(
            Exchange(urlsplit(request.url).path, dict(request.headers), body, response.status_code, response.text)
        )

    session.hooks["response"].append(hook)
    try:
        yield exchanges
    finally:
        session.hooks["response"].remove(hook)


def assert_all_accepted(exchanges: list[Exchange], expected_messages: int) -> None:
    assert exchanges, "the library made no request"
    for exchange in exchanges:
        assert exchange.status == 200, f"POST {exchange.path} answered {exchange.status}: {exchange.answer[:500]}"
        try:
            answer = json.loads(exchange.answer)
        except ValueError as error:
            raise AssertionError(f"POST {exchange.path} answered non-JSON: {exchange.answer[:500]}") from error
        assert isinstance(answer, dict) and answer.get("success") is True, (
            f"POST {exchange.path} should answer {{\"success\": true}}, got {exchange.answer[:500]}"
        )
    sent = sum(exchange.batch_size for exchange in exchanges)
    assert sent == expected_messages, f"the library sent {sent} messages, expected {expected_messages}"
