"""Hostile input on the read side, on both stores: every value a client can put in a query
parameter, a path id, a cursor or a header is a 4xx problem, never a 5xx, and never a false
"store unavailable" (a 503 with a WARNING that would page someone for a client's typo).
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from warren.service.http.problems import PROBLEM_JSON

# (path with query, what the answer must be): every one a client can send through aiohttp.
HOSTILE_READS = [
    "/v1/tasks?type=%00",
    "/v1/tasks?queue=a%00b",
    "/v1/tasks?type=%FF%FE",
    "/v1/tasks?type=%ED%A0%80",  # an encoded UTF-16 surrogate
    "/v1/tasks?type=" + "x" * 5000,
    "/v1/tasks?status=%00",
    "/v1/tasks?since=%00",
    "/v1/tasks?since=9999-12-31T23:59:59-14:00",
    "/v1/tasks?since=0001-01-01T00:00:00%2B14:00",
    "/v1/tasks?limit=1e400",
    "/v1/tasks?cursor=%00",
    "/v1/tasks?cursor=" + base64.urlsafe_b64encode(b"\x00\xff garbage").decode(),
    "/v1/tasks?cursor=" + base64.urlsafe_b64encode(b'["\\u0000", 1e999]').decode(),
    "/v1/tasks/%00",
    "/v1/tasks/%FF?wait=1",
    "/v1/tasks/" + "a" * 3000,
    "/v1/tasks/%00/events",
    "/v1/tasks?wait=1&type=%C0%80",
]


@pytest.mark.parametrize("path", HOSTILE_READS)
async def test_hostile_reads_are_4xx_not_outages(
    gateway: TestClient[Any, Any], path: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        response = await gateway.get(path)
    assert 400 <= response.status < 500, (response.status, await response.text())
    assert response.headers["Content-Type"] == PROBLEM_JSON
    assert not [r for r in caplog.records if "unavailable" in r.getMessage().lower()]


HOSTILE_HEADERS = [
    {"Idempotency-Key": "k" * 5000},
    {"Idempotency-Key": "é\u2028ü"},
    {"X-Warren-Client": "é" * 300},
]


@pytest.mark.parametrize("headers", HOSTILE_HEADERS)
async def test_hostile_submission_headers_are_4xx_or_accepted_never_5xx(
    gateway: TestClient[Any, Any], headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    body = {"type": "diag.echo", "payload": {"message": "hostile header"}}
    with caplog.at_level(logging.WARNING):
        response = await gateway.post("/v1/tasks", json=body, headers=headers)
        again = await gateway.post("/v1/tasks", json=body, headers=headers)
    assert response.status in (202, 400), (response.status, await response.text())
    replayed = (200,) if "Idempotency-Key" in headers else (202,)  # the same key: a replay
    assert again.status in (*replayed, 400), (again.status, await again.text())
    assert not [r for r in caplog.records if "unavailable" in r.getMessage().lower()]


async def test_cancelling_a_hostile_id_is_a_404(gateway: TestClient[Any, Any]) -> None:
    for path in ("/v1/tasks/%00", "/v1/tasks/%FF", "/v1/tasks/" + "a" * 3000):
        response = await gateway.delete(path)
        assert response.status == 404, (path, response.status, await response.text())
