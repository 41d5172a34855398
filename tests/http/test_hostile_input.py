"""Hostile input beyond ``test_gateway_input``'s catalogue: NUL, surrogates in keys, headers that
are too big, too many or broken, trace context that is garbage, slow clients.

Why: every one of these must end in a clean 4xx (or, for trace context and
over-long informational headers, be ignored or capped), never a 500, never a
message on the broker, and never a broken broker connection: a header larger
than the AMQP frame makes the broker close the gateway's whole connection. So
each test checks that nothing was published and that the gateway still
answers ``202`` to a valid task afterwards.

Requests that aiohttp's parser refuses (oversized or malformed header lines)
never reach the application: they get aiohttp's own ``400`` in ``text/plain``,
not a problem body. Those are sent over a raw socket, as no HTTP client lets
one write them.

The gateway and namespace are shared by the module (``tests/http/conftest.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import make_settings
from tests.http.support import VALID, Client, assert_nothing_published_and_alive, assert_problem
from tests.support import message_count
from warren.service.http.app import create_app
from warren.service.logs import quiet_client_errors
from warren.service.settings import Settings
from warren.service.topology import Topology
from warren.service.wire.envelope import (
    H_SUBMITTER,
    H_TRACEPARENT,
    H_TRACESTATE,
    TRACEPARENT,
    Envelope,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

JSON = {"Content-Type": "application/json"}
GOOD_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


# --- module settings (the other module-scoped fixtures are the folder's conftest's) -------
@pytest.fixture(scope="module")
def settings() -> Settings:
    return make_settings(http_body_timeout_seconds=0.5)


# --- helpers ------------------------------------------------------------------------------
async def published(channel: AbstractChannel, shape: Topology) -> AbstractIncomingMessage:
    """The one message in the diag work queue (taken and acked)."""
    queue = await channel.declare_queue(shape.names.work_queue("diag"), passive=True)
    message = await queue.get(timeout=5)
    await message.ack()
    return message


async def raw(gateway: Client, data: bytes, timeout: float = 5) -> bytes:
    """Write ``data`` on a fresh connection; everything the gateway sends until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(timeout):
            return await reader.read()
    finally:
        writer.close()


async def post_raw(gateway: Client, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """POST ``VALID`` with exactly these headers: aiohttp's client, instrumented once a gateway
    ran in this process, would replace a ``traceparent``/``tracestate`` with its own."""
    lines = (f"{name}: {value}".encode() for name, value in headers.items())
    answer = await raw(gateway, request_bytes(b"Connection: close", *lines))
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), orjson.loads(body)


def request_bytes(*headers: bytes, body: bytes = orjson.dumps(VALID)) -> bytes:
    head = [b"POST /v1/tasks HTTP/1.1", b"Host: x", b"Content-Type: application/json",
            b"Content-Length: %d" % len(body), *headers]  # fmt: skip
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def webhook(data: bytes) -> bytes:
    """A webhook.deliver submission whose ``data`` is the given JSON object, verbatim."""
    return b'{"type":"webhook.deliver","payload":{"url":"http://x.test/","event":"e","data":' + (
        data + b"}}"
    )


# --- 400: JSON that parses but Warren refuses ----------------------------------------------
@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param(b'{"type":"diag.echo","payload":{"message":"a\\u0000b"}}', "nul-character",
                     id="nul-escape-in-string"),
        pytest.param(webhook(b'{"k\\u0000":1}'), "nul-character", id="nul-escape-in-key"),
        pytest.param(webhook(b'{"k":[[{"x":"\\u0000"}]]}'), "nul-character", id="nul-deep"),
        pytest.param(webhook(b'{"\\ud800":1}'), "malformed-json", id="lone-surrogate-in-key"),
        pytest.param(webhook(b'{"k":"\\udfff\\ud800"}'), "malformed-json",
                     id="surrogates-in-wrong-order"),
        pytest.param(webhook(b'{"k":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
                     "malformed-json", id="100k-deep-in-payload"),
        pytest.param(webhook(b'{"":' * 40_000 + b"1" + b"}" * 40_000), "malformed-json",
                     id="40k-deep-objects-in-payload"),
        pytest.param(b"\xff\xfe" + orjson.dumps(VALID).decode().encode("utf-16-le"),
                     "malformed-json", id="utf16-with-bom"),
        pytest.param(b"\xef\xbb\xbf\xef\xbb\xbf" + orjson.dumps(VALID), "malformed-json",
                     id="double-utf8-bom"),
    ],
)  # fmt: skip
async def test_refused_json_is_400(
    gateway: Client, channel: AbstractChannel, shape: Topology, body: bytes, code: str
) -> None:
    response = await gateway.post("/v1/tasks", data=body, headers=JSON)
    problem = await assert_problem(response, 400, code)
    assert "errors" not in problem
    await assert_nothing_published_and_alive(gateway, channel, shape)


async def test_a_backslash_before_u0000_is_text_not_nul(
    gateway: Client, channel: AbstractChannel, shape: Topology
) -> None:
    body = b'{"type":"diag.echo","payload":{"message":"C:\\\\u0000"}}'
    response = await gateway.post("/v1/tasks", data=body, headers=JSON)
    assert response.status == 202, await response.text()
    assert orjson.loads((await published(channel, shape)).body) == {"message": "C:\\u0000"}


@pytest.mark.parametrize("name", ["diag.ech*", "diag.echo.*", "*", "diag.echo#", "diag.echo."])
async def test_routing_wildcards_in_the_type_are_422(
    gateway: Client, channel: AbstractChannel, shape: Topology, name: str
) -> None:
    response = await gateway.post("/v1/tasks", json={**VALID, "type": name})
    problem = await assert_problem(response, 422, "validation-failed")
    assert [e["loc"] for e in problem["errors"]] == [["type"]]
    await assert_nothing_published_and_alive(gateway, channel, shape)


# --- headers the parser refuses: aiohttp's 400 --------------------------------------------
@pytest.mark.parametrize(
    "data",
    [
        pytest.param(request_bytes(b"X-Warren-Client: a\rb"), id="bare-CR-in-value"),
        pytest.param(request_bytes(b"X-Warren-Client: a\nX-Injected: 1"), id="bare-LF-in-value"),
        pytest.param(request_bytes(b"Idempotency-Key: k\r\n x"), id="obs-fold"),
        pytest.param(request_bytes(b"traceparent: a\x00b"), id="NUL-in-value"),
        pytest.param(request_bytes(b"X-Big: " + b"a" * 9000), id="header-over-limit"),
        pytest.param(request_bytes(b"X" * 9000 + b": 1"), id="header-name-over-limit"),
        pytest.param(request_bytes(*(b"X-%d: 1" % i for i in range(101))), id="too-many-headers"),
        pytest.param(b"GET /v1/tasks?x=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                     id="request-line-over-limit"),
    ],
)  # fmt: skip
async def test_headers_the_parser_refuses_are_400(
    gateway: Client, channel: AbstractChannel, shape: Topology, data: bytes
) -> None:
    answer = await raw(gateway, data)
    assert answer.startswith((b"HTTP/1.0 400 ", b"HTTP/1.1 400 ")), answer[:200]
    await assert_nothing_published_and_alive(gateway, channel, shape)


async def test_a_refused_request_is_one_info_line_not_an_error_with_a_traceback(
    gateway: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """aiohttp logs parser refusals at ERROR with a traceback; ``setup_logging``'s filter
    makes each one INFO line, so a hostile client cannot flood the logs with false alarms."""
    server_log = logging.getLogger("aiohttp.server")
    server_log.addFilter(quiet_client_errors)
    try:
        with caplog.at_level(logging.INFO, logger="aiohttp.server"):
            answer = await raw(gateway, request_bytes(b"X-Big: " + b"a" * 9000))
            await asyncio.sleep(0.05)
    finally:
        server_log.removeFilter(quiet_client_errors)
    assert answer.startswith((b"HTTP/1.0 400 ", b"HTTP/1.1 400 ")), answer[:200]
    [record] = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert (record.levelno, record.exc_info) == (logging.INFO, None)
    assert record.getMessage().startswith("refused a malformed request (400)")


# --- headers copied towards the message: refused, dropped or capped ------------------------
@pytest.mark.parametrize(
    "key",
    ["k" * 256, "k" * 8000, "tab\tinside", "caf\u00e9", " "],
    ids=["256-chars", "8000-chars", "tab", "non-ascii", "blank"],
)
async def test_a_bad_idempotency_key_is_400(
    gateway: Client, channel: AbstractChannel, shape: Topology, key: str
) -> None:
    headers = {"Idempotency-Key": key.encode().decode("latin-1")}
    response = await gateway.post("/v1/tasks", json=VALID, headers=headers)
    await assert_problem(response, 400, "invalid-idempotency-key")
    await assert_nothing_published_and_alive(gateway, channel, shape)


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        "00-" + "0" * 32 + "-" + "0" * 16 + "-01",  # all-zero ids are invalid
        "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",  # upper case
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # version ff is invalid
        GOOD_TRACEPARENT + "-" + "x" * 8000,  # oversized
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",  # no flags
    ],
    ids=["garbage", "zero-ids", "upper-case", "version-ff", "8k", "truncated"],
)
async def test_a_malformed_traceparent_is_ignored(
    gateway: Client, channel: AbstractChannel, shape: Topology, value: str
) -> None:
    status, accepted = await post_raw(gateway, {"traceparent": value, "tracestate": "vendor=1"})
    assert status == 202, accepted
    headers_sent = (await published(channel, shape)).headers or {}
    assert TRACEPARENT.match(str(headers_sent[H_TRACEPARENT]))  # a new trace, not the garbage
    assert accepted["trace_id"] not in value.lower()
    assert str(headers_sent[H_TRACEPARENT])[3:35] == accepted["trace_id"]


async def test_a_valid_traceparent_is_continued(
    gateway: Client, channel: AbstractChannel, shape: Topology
) -> None:
    """The counterpart of the test above: so it cannot pass by ignoring every traceparent."""
    status, accepted = await post_raw(gateway, {"traceparent": GOOD_TRACEPARENT})
    assert status == 202, accepted
    assert accepted["trace_id"] == GOOD_TRACEPARENT[3:35]
    sent = (await published(channel, shape)).headers or {}
    assert str(sent[H_TRACEPARENT])[3:35] == accepted["trace_id"]


async def test_oversized_informational_headers_are_capped_in_the_message(
    gateway: Client, channel: AbstractChannel, shape: Topology
) -> None:
    # Given a client name and a tracestate of 8000 bytes each (under aiohttp's 8190 limit)
    members = ",".join(f"v{i}={'x' * 240}" for i in range(32))  # 32 members: W3C's maximum
    headers = {
        "X-Warren-Client": "c" * 8000,
        "traceparent": GOOD_TRACEPARENT,
        "tracestate": members,
    }
    # When the task is submitted, it is accepted
    status, accepted = await post_raw(gateway, headers)
    assert status == 202, accepted
    # Then the message carries at most a bounded part of each
    message = await published(channel, shape)
    sent = message.headers or {}
    assert len(str(sent[H_SUBMITTER])) <= 200
    assert H_TRACESTATE not in sent  # over 512 bytes: dropped whole, as W3C allows
    assert message.message_id is not None and len(message.message_id.encode()) <= 255
    assert len(repr(sent)) < 4096
    await assert_nothing_published_and_alive(gateway, channel, shape)


async def test_an_envelope_refuses_a_message_id_longer_than_an_amqp_short_string() -> None:
    """The last door: a ``message_id`` over 255 bytes would fail inside pamqp mid-publish."""
    envelope = Envelope(
        id="x" * 256,
        type="diag.echo",
        queue="diag",
        body=b"{}",
        attempt=1,
        max_attempts=1,
        timeout_seconds=1,
        created_at=datetime.now(UTC),
    )
    with pytest.raises(ValueError, match="message_id"):
        envelope.to_message()


# --- slow clients ---------------------------------------------------------------------------
async def test_a_body_that_trickles_in_is_408(
    gateway: Client, channel: AbstractChannel, shape: Topology, settings: Settings
) -> None:
    # Given a client that sends its headers, then one byte of a 1000-byte body every 0.1 s
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    started = time.monotonic()  # before the headers: the handler's timer starts after them
    writer.write(request_bytes(body=b"")[: -len(b"0\r\n\r\n")] + b"1000\r\n\r\n")
    answer = b""
    try:
        while not answer and time.monotonic() - started < 5:
            writer.write(b" ")
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                answer = await asyncio.wait_for(reader.read(4096), 0.1)
    finally:
        writer.close()
    elapsed = time.monotonic() - started
    # Then after the body timeout it gets a 408 problem and the connection is closed
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer[:300]
    assert b"Connection: close" in head
    assert orjson.loads(body)["code"] == "body-timeout"
    assert settings.http_body_timeout_seconds <= elapsed < settings.http_body_timeout_seconds + 2
    await assert_nothing_published_and_alive(gateway, channel, shape)


async def test_headers_that_trickle_in_are_cut_off(
    channel: AbstractChannel, settings: Settings, shape: Topology
) -> None:
    """A slow-header ("slowloris") client: aiohttp closes a connection whose request has not
    arrived whole within the keep-alive timeout, counted from the connection's start."""
    limited = settings.model_copy(update={"http_keepalive_timeout_seconds": 1.0})
    async with TestClient(TestServer(create_app(limited))) as gateway:
        started = time.monotonic()  # the timeout counts from the connection's start
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(b"POST /v1/tasks HTTP/1.1\r\nHost: x\r\n")
        closed = False
        try:
            for i in range(50):  # one more header every 0.1 s, never the end of them
                writer.write(b"X-%d: 1\r\n" % i)
                await writer.drain()
                try:
                    closed = await asyncio.wait_for(reader.read(4096), 0.1) == b""
                except TimeoutError:
                    continue
                except ConnectionResetError:
                    closed = True
                if closed:
                    break
        except ConnectionResetError:
            closed = True
        finally:
            writer.close()
        assert closed
        assert 1.0 <= time.monotonic() - started < 3.0
        await assert_nothing_published_and_alive(gateway, channel, shape)


async def test_header_limits_come_from_the_settings(
    channel: AbstractChannel, settings: Settings, shape: Topology
) -> None:
    """The limits reach the server through ``handler_args`` (a typo there would make aiohttp
    fall back to its defaults with only a log line): tighter settings, tighter limits."""
    tight = settings.model_copy(update={"http_max_header_bytes": 1024, "http_max_headers": 16})
    async with TestClient(TestServer(create_app(tight))) as gateway:
        refused = [
            request_bytes(b"X-Big: " + b"a" * 1100),
            request_bytes(*(b"X-%d: 1" % i for i in range(17))),
        ]
        for data in refused:
            answer = await raw(gateway, data)
            assert answer.startswith((b"HTTP/1.0 400 ", b"HTTP/1.1 400 ")), answer[:200]
        answer = await raw(gateway, request_bytes(b"Connection: close", b"X-Big: " + b"a" * 900))
        assert answer.startswith(b"HTTP/1.1 202 "), answer[:300]
    assert await message_count(channel, shape.names.work_queue("diag")) == 1
