"""``webhook.deliver`` against a real aiohttp receiver on 127.0.0.1, no mocks.

What a receiver relies on: the exact signed bytes arrive and ``verify`` (the
function it copies) accepts them; what an operator relies on: the receiver's
status decides between success, a retry (at its ``Retry-After``) and giving up.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import uuid4

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from examples.demo.handlers.webhook import WebhookError, deliver, parse_retry_after, sign, verify
from examples.demo.settings import DemoSettings
from examples.demo.tasks import WebhookPayload
from warren.consumers.context import Resources, TaskContext
from warren.service.errors import Permanent, Retry

SECRET = "s3cret-for-tests"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Records every request and answers ``status`` with ``headers``."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    stall: bool = False
    requests: list[Received] = field(default_factory=list)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(Received(dict(request.headers), await request.read()))
        if self.stall:  # answer only when the test ends: the client must time out
            await self.released.wait()
        return web.Response(status=self.status, headers=self.headers, text="thanks")


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    """A running receiver and the URL of its ``/hook`` endpoint."""
    state = Receiver()
    app = web.Application()
    app.router.add_route("*", "/hook", state.handle)
    app.router.add_route("*", "/elsewhere", state.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield state, str(server.make_url("/hook"))
    state.released.set()
    await server.close()


@pytest.fixture
async def resources() -> AsyncIterator[Resources]:
    shared = Resources(allow_private=True)  # the receivers run on this machine
    yield shared
    await shared.close()


def make_ctx(resources: Resources, timeout: float = 5.0) -> TaskContext:
    return TaskContext(
        task_id=uuid4().hex,
        type="webhook.deliver",
        queue="webhooks",
        attempt=1,
        max_attempts=3,
        trace_id=None,
        redelivered=False,
        worker="test",
        settings=DemoSettings(
            webhook_signing_secret=SecretStr(SECRET), webhook_timeout_seconds=timeout
        ),
        resources=resources,
    )


def payload(url: str) -> WebhookPayload:
    return WebhookPayload.model_validate(
        {"url": url, "event": "invoice.paid", "data": {"invoice": "INV-7", "amount": 12.5}}
    )


async def test_receiver_gets_the_exact_signed_body(
    receiver: tuple[Receiver, str], resources: Resources
) -> None:
    state, url = receiver
    ctx = make_ctx(resources)

    result = await deliver.fn(payload(url), ctx)

    assert result == {"status": 200}
    [request] = state.requests
    document = {
        "event": "invoice.paid",
        "task_id": ctx.task_id,
        "data": {"invoice": "INV-7", "amount": 12.5},
    }
    assert request.body == orjson.dumps(document)  # the very bytes that were signed
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Warren-Task-Id"] == ctx.task_id
    timestamp = int(request.headers["X-Warren-Timestamp"])
    assert abs(time.time() - timestamp) < 10
    signature = request.headers["X-Warren-Signature"]
    assert verify(SECRET.encode(), timestamp, request.body, signature)
    signed = f"{timestamp}.".encode() + request.body
    expected = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert signature == f"sha256={expected}"


def test_verify_refuses_forgeries_and_replays() -> None:
    secret, body, now = b"k", b'{"event":"x"}', 1_700_000_000
    good = sign(secret, now, body)

    assert verify(secret, now, body, good, now=now + 10)
    assert not verify(b"other", now, body, good, now=now)
    assert not verify(secret, now, body + b" ", good, now=now)
    assert not verify(secret, now + 1, body, good, now=now)
    assert not verify(secret, now, body, good, now=now + 301)  # too old: a replay
    assert verify(secret, now, body, good, now=now + 301, max_age_seconds=None)


@pytest.mark.parametrize("status", [200, 201, 204])
async def test_2xx_succeeds(
    receiver: tuple[Receiver, str], resources: Resources, status: int
) -> None:
    state, url = receiver
    state.status = status

    assert await deliver.fn(payload(url), make_ctx(resources)) == {"status": status}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, Permanent),
        (404, Permanent),
        (410, Permanent),
        (408, WebhookError),
        (425, WebhookError),
        (429, WebhookError),  # without Retry-After: the backoff decides
        (500, WebhookError),
        (503, WebhookError),
    ],
)
async def test_status_decides_permanent_or_retry(
    receiver: tuple[Receiver, str], resources: Resources, status: int, expected: type[Exception]
) -> None:
    state, url = receiver
    state.status = status

    with pytest.raises(expected, match=f"webhook answered {status}"):
        await deliver.fn(payload(url), make_ctx(resources))


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_is_honoured(
    receiver: tuple[Receiver, str], resources: Resources, status: int
) -> None:
    state, url = receiver
    state.status, state.headers = status, {"Retry-After": "7"}

    with pytest.raises(Retry) as raised:
        await deliver.fn(payload(url), make_ctx(resources))
    assert raised.value.after == 7


async def test_redirects_are_not_followed(
    receiver: tuple[Receiver, str], resources: Resources
) -> None:
    state, url = receiver
    state.status, state.headers = 302, {"Location": "/elsewhere"}

    with pytest.raises(Permanent, match="redirects are not followed"):
        await deliver.fn(payload(url), make_ctx(resources))
    assert len(state.requests) == 1


async def test_timeout_is_retryable(receiver: tuple[Receiver, str], resources: Resources) -> None:
    state, url = receiver
    state.stall = True

    with pytest.raises(WebhookError, match="TimeoutError"):
        await deliver.fn(payload(url), make_ctx(resources, timeout=0.2))


async def test_connection_refused_is_retryable(resources: Resources) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(WebhookError, match="webhook request failed"):
        await deliver.fn(payload(f"http://127.0.0.1:{port}/hook"), make_ctx(resources))


async def test_data_json_cannot_encode_is_permanent(resources: Resources) -> None:
    too_big = WebhookPayload.model_validate(
        {"url": "http://127.0.0.1:9/", "event": "e", "data": {"n": 2**70}}
    )

    with pytest.raises(Permanent, match="cannot be encoded"):
        await deliver.fn(too_big, make_ctx(resources))


def test_retry_after_forms() -> None:
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Wed, 01 May 2024 12:01:30 GMT", now=now) == 90
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now=now) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") is None
    assert parse_retry_after(None) is None
