"""Every bad HTTP input to the gateway gets the right 4xx problem, and nothing is published.

Why: the gateway is Warren's only public surface. A client bug or a hostile
body must be refused before anything reaches the broker, with an exact status,
an ``application/problem+json`` body whose ``code`` a client can branch on and,
for validation errors, the ``loc`` of the offending field; and never a 500
(a parser's recursion limit, a serializer's depth limit, a broken gzip stream).
The gateway runs on a real broker with no consumer, so a task wrongly published
would sit in its work queue: every test checks that all work queues are empty
after its bad requests, then sends one valid task to prove the gateway still
serves (the count becomes 1).

Speed: one gateway and namespace for the whole module (``tests/http/conftest.py``).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aio_pika.abc import AbstractChannel
from aiohttp import ClientResponse

from tests.demo import CATALOG
from tests.http.support import VALID, Client, assert_nothing_published_and_alive, assert_problem
from tests.support import message_count
from warren.service.http.submission import MAX_JSON_DEPTH
from warren.service.settings import Settings
from warren.service.topology import Topology

pytestmark = pytest.mark.asyncio(loop_scope="module")

Loc = list[str | int]

VALID_BYTES = orjson.dumps(VALID)
JSON = "application/json"


# --- helpers ------------------------------------------------------------------------
async def post(
    gateway: Client, body: bytes | AsyncIterator[bytes], content_type: str | None = JSON
) -> ClientResponse:
    """POST raw bytes (or a chunked stream); ``content_type=None`` sends no Content-Type."""
    if content_type is None:
        return await gateway.post("/v1/tasks", data=body, skip_auto_headers=["Content-Type"])
    return await gateway.post("/v1/tasks", data=body, headers={"Content-Type": content_type})


async def post_json(gateway: Client, value: Any) -> ClientResponse:
    """``value`` as JSON; the stdlib's encoder, as orjson refuses integers beyond 64 bits."""
    return await post(gateway, json.dumps(value, ensure_ascii=False).encode())


async def assert_invalid(response: ClientResponse, *locs: Loc) -> list[dict[str, Any]]:
    """A 422 whose errors point exactly at ``locs``, without echoing the input."""
    problem = await assert_problem(response, 422, "validation-failed")
    errors: list[dict[str, Any]] = problem["errors"]
    assert [e["loc"] for e in errors] == list(locs), errors
    for error in errors:
        assert error["msg"] and error["type"] and "input" not in error
    return errors


def nested(depth: int) -> bytes:
    """JSON of ``depth`` levels of arrays and objects, alternating (``[]`` is 1).

    Built as bytes: orjson (like pydantic) refuses to serialize past ~255 levels.
    """
    value = b"[]"
    for level in range(depth - 1):
        value = b'{"k":' + value + b"}" if level % 2 else b"[" + value + b"]"
    return value


def webhook(data: bytes) -> bytes:
    """A webhook.deliver submission whose ``data`` is the given JSON object, verbatim.

    The submission and its payload are two levels around ``data``.
    """
    body = {
        "type": "webhook.deliver",
        "payload": {"url": "http://x.test/", "event": "e", "data": 0},
    }
    return orjson.dumps(body)[: -len(b"0}}")] + data + b"}}"


# --- 415: content type and charset ------------------------------------------------
@pytest.mark.parametrize(
    ("content_type", "code"),
    [
        ("text/plain", "unsupported-media-type"),
        ("application/x-www-form-urlencoded", "unsupported-media-type"),
        ("multipart/form-data; boundary=x", "unsupported-media-type"),
        ("application/octet-stream", "unsupported-media-type"),
        ("application/jsonx", "unsupported-media-type"),
        ("application/merge-patch+json", "unsupported-media-type"),
        (None, "unsupported-media-type"),
        ("application/json; charset=latin-1", "unsupported-charset"),
        ("application/json; charset=iso-8859-1", "unsupported-charset"),
        ("application/json; charset=utf-16", "unsupported-charset"),
        ("application/json; charset=utf-7", "unsupported-charset"),
    ],
    ids=str,
)
async def test_unsupported_content_type_is_415(
    gateway: Client,
    channel: AbstractChannel,
    shape: Topology,
    content_type: str | None,
    code: str,
) -> None:
    await assert_problem(await post(gateway, VALID_BYTES, content_type), 415, code)
    await assert_nothing_published_and_alive(gateway, channel, shape)


# --- 413: body size ------------------------------------------------------------------
def padded(size: int) -> bytes:
    """``VALID`` with insignificant leading whitespace, ``size`` bytes in all."""
    return b" " * (size - len(VALID_BYTES)) + VALID_BYTES


async def chunks(body: bytes, size: int = 16_384) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


FRAMINGS = ["content-length", "chunked", "gzip"]


async def post_framed(gateway: Client, body: bytes, framing: str) -> ClientResponse:
    """``body`` with an honest Content-Length, chunked without one, or gzip-compressed.

    Compressed, the body is tiny on the wire (under the Content-Length check) and
    only its inflated size counts.
    """
    if framing == "chunked":
        response = await post(gateway, chunks(body))
        assert "Content-Length" not in response.request_info.headers
        assert response.request_info.headers["Transfer-Encoding"] == "chunked"
        return response
    if framing == "gzip":
        headers = {"Content-Type": JSON, "Content-Encoding": "gzip"}
        return await gateway.post("/v1/tasks", data=gzip.compress(body), headers=headers)
    return await post(gateway, body)


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_body_one_byte_over_the_limit_is_413(
    gateway: Client,
    channel: AbstractChannel,
    shape: Topology,
    settings: Settings,
    framing: str,
) -> None:
    response = await post_framed(gateway, padded(settings.max_body_bytes + 1), framing)
    problem = await assert_problem(response, 413, "body-too-large")
    assert str(settings.max_body_bytes) in problem["detail"]
    assert response.headers["Connection"] == "close"  # the rest of the body was not read
    await assert_nothing_published_and_alive(gateway, channel, shape)


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_body_of_exactly_the_limit_is_accepted(
    gateway: Client,
    channel: AbstractChannel,
    shape: Topology,
    settings: Settings,
    framing: str,
) -> None:
    response = await post_framed(gateway, padded(settings.max_body_bytes), framing)
    assert response.status == 202, await response.text()
    assert await message_count(channel, shape.names.work_queue("diag")) == 1


@pytest.mark.parametrize(
    ("encoding", "body", "code"),
    [
        pytest.param("gzip", b"definitely not gzip", "unreadable-body", id="gzip-garbage"),
        # zlib yields what it could inflate: a truncated document
        pytest.param(
            "gzip", gzip.compress(VALID_BYTES)[:-12], "malformed-json", id="gzip-truncated"
        ),
        pytest.param("deflate", b"definitely not deflate", "unreadable-body", id="deflate-garbage"),
        pytest.param("br", VALID_BYTES, "unreadable-body", id="br-garbage"),
        pytest.param("zstd", VALID_BYTES, "unreadable-body", id="zstd-garbage"),
    ],
)
async def test_undecodable_body_is_400(
    gateway: Client,
    channel: AbstractChannel,
    shape: Topology,
    encoding: str,
    body: bytes,
    code: str,
) -> None:
    headers = {"Content-Type": JSON, "Content-Encoding": encoding}
    response = await gateway.post("/v1/tasks", data=body, headers=headers)
    await assert_problem(response, 400, code)
    if code == "unreadable-body":
        assert response.headers["Connection"] == "close"
    await assert_nothing_published_and_alive(gateway, channel, shape)


# --- 400: not JSON (or JSON Warren refuses) ---------------------------------------------
@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param(b"", "malformed-json", id="empty"),
        pytest.param(b"   \n", "malformed-json", id="whitespace-only"),
        pytest.param(VALID_BYTES[:-3], "malformed-json", id="truncated"),
        pytest.param(VALID_BYTES + b" x", "malformed-json", id="trailing-garbage"),
        pytest.param(VALID_BYTES + VALID_BYTES, "malformed-json", id="two-documents"),
        pytest.param(b"\xef\xbb\xbf" + VALID_BYTES, "malformed-json", id="utf8-bom"),
        pytest.param(b'{"type":"diag.sleep","payload":{"ms":NaN}}', "malformed-json", id="nan"),
        pytest.param(b'{"type":"diag.sleep","payload":{"ms":Infinity}}', "malformed-json",
                     id="inf"),
        pytest.param(
            b'{"type":"diag.sleep","payload":{"ms":-Infinity}}', "malformed-json", id="-inf"
        ),
        pytest.param(b'{"type":"diag.sleep","payload":{"ms":1e999}}', "malformed-json", id="1e999"),
        pytest.param(b'{"type":"diag.echo","payload":{"message":"\xff\xfe"}}', "malformed-json",
                     id="invalid-utf8"),
        pytest.param(b'{"type":"diag.echo","payload":{"message":"\xed\xa0\x80"}}',
                     "malformed-json", id="utf8-encoded-surrogate"),
        pytest.param(b'{"type":"diag.echo","payload":{"message":"\\ud800"}}', "malformed-json",
                     id="lone-surrogate-escape"),
        pytest.param(b'{"type":"diag.echo","payload":{"message":"\\udc00x"}}', "malformed-json",
                     id="lone-low-surrogate-escape"),
        pytest.param(VALID_BYTES + b"\x00", "malformed-json", id="nul-after-document"),
        pytest.param(b'{"type":"diag.echo",\x00"payload":{"message":"hi"}}', "malformed-json",
                     id="nul-between-members"),
        pytest.param(b'{"type":"diag.echo","payload":{"message":"a\x00b"}}', "malformed-json",
                     id="raw-nul-in-string"),
        pytest.param(b"{'type':'diag.echo','payload':{}}", "malformed-json", id="single-quotes"),
        pytest.param(b'{"type":"diag.echo","payload":{"message":"hi",}}', "malformed-json",
                     id="trailing-comma"),
        pytest.param(b'{"type":"diag.echo"/*c*/,"payload":{"message":"hi"}}', "malformed-json",
                     id="comment"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, "malformed-json", id="100k-deep-arrays"),
        pytest.param(b'{"a":' * 40_000 + b"1" + b"}" * 40_000, "malformed-json",
                     id="40k-deep-objects"),
        pytest.param(b"[" * 100_000, "malformed-json", id="100k-unclosed-arrays"),
        pytest.param(nested(1000), "json-too-deep", id="1000-deep"),
        pytest.param(nested(1024), "json-too-deep", id="1024-deep-orjson-max"),
        pytest.param(webhook(b'{"x":' + nested(1000) + b"}"), "json-too-deep",
                     id="1000-deep-in-payload"),
        pytest.param(webhook(b'{"x":' + nested(MAX_JSON_DEPTH - 2) + b"}"), "json-too-deep",
                     id="one-level-over-max-depth"),
        pytest.param(b'{"type":"diag.echo","type":"diag.fail","payload":{}}', "duplicate-key",
                     id="duplicate-top-level-key"),
        pytest.param(b'{"type":"diag.echo","payload":{"message":"a","message":"b"}}',
                     "duplicate-key", id="duplicate-payload-key"),
        pytest.param(b'{"type":"diag.echo","payload":{"message":"a:b","message":"c:d"}}',
                     "duplicate-key", id="duplicate-key-colons-in-strings"),
        pytest.param(b'{"type":"diag.echo","payload":{"message":"a","\\u006dessage":"b"}}',
                     "duplicate-key", id="duplicate-key-by-escape"),
        pytest.param(webhook(b'{"x":"http://a","y":{"z":[{"k":1,"k":2}]}}'), "duplicate-key",
                     id="duplicate-key-deep-in-data"),
    ],
)  # fmt: skip
async def test_malformed_json_is_400(
    gateway: Client, channel: AbstractChannel, shape: Topology, body: bytes, code: str
) -> None:
    problem = await assert_problem(await post(gateway, body), 400, code)
    assert "errors" not in problem
    await assert_nothing_published_and_alive(gateway, channel, shape)


# --- 422: JSON, but not a submission ---------------------------------------------------
def submission(**changes: Any) -> dict[str, Any]:
    """``VALID`` with top-level members replaced (``...`` removes one)."""
    merged = {**VALID, **changes}
    return {k: v for k, v in merged.items() if v is not ...}


@pytest.mark.parametrize(
    ("body", "locs"),
    [
        pytest.param([VALID], [[]], id="array"),
        pytest.param("diag.echo", [[]], id="string"),
        pytest.param(42, [[]], id="number"),
        pytest.param(None, [[]], id="null"),
        pytest.param(True, [[]], id="true"),
        pytest.param({}, [["type"], ["payload"]], id="empty-object"),
        pytest.param(submission(type=...), [["type"]], id="missing-type"),
        pytest.param(submission(payload=...), [["payload"]], id="missing-payload"),
        pytest.param(submission(payload="hi"), [["payload"]], id="payload-string"),
        pytest.param(submission(payload=["hi"]), [["payload"]], id="payload-array"),
        pytest.param(submission(payload=None), [["payload"]], id="payload-null"),
        pytest.param(submission(extra=1), [["extra"]], id="unknown-top-level-field"),
        pytest.param(submission(id="x"), [["id"]], id="client-chosen-id"),
        pytest.param(submission(type=5), [["type"]], id="type-number"),
        pytest.param(submission(type=None), [["type"]], id="type-null"),
        pytest.param(submission(type=""), [["type"]], id="type-empty"),
        pytest.param(submission(type="echo"), [["type"]], id="type-without-area"),
        pytest.param(submission(type="Diag.Echo"), [["type"]], id="type-uppercase"),
        pytest.param(submission(type="diag.echo.now"), [["type"]], id="type-three-parts"),
        pytest.param(submission(type="diag..echo"), [["type"]], id="type-double-dot"),
        pytest.param(submission(type=".echo"), [["type"]], id="type-leading-dot"),
        pytest.param(submission(type="diag.*"), [["type"]], id="type-star"),
        pytest.param(submission(type="diag.#"), [["type"]], id="type-hash"),
        pytest.param(submission(type="#"), [["type"]], id="type-only-hash"),
        pytest.param(submission(type="*.echo"), [["type"]], id="type-star-area"),
        pytest.param(submission(type="diag.echo\n"), [["type"]], id="type-trailing-newline"),
        pytest.param(submission(type=" diag.echo"), [["type"]], id="type-leading-space"),
        pytest.param(submission(type="diag.\u00e9cho"), [["type"]], id="type-non-ascii"),
        pytest.param(submission(type="diag.ech\u043e"), [["type"]], id="type-cyrillic-o"),
        pytest.param(submission(type="a." + "b" * 80), [["type"]], id="type-too-long"),
        pytest.param(submission(type="diag.nope"), [["type"]], id="unknown-type"),
        pytest.param(submission(type="nope.echo"), [["type"]], id="unknown-area"),
    ],
)
async def test_not_a_submission_is_422(
    gateway: Client, channel: AbstractChannel, shape: Topology, body: Any, locs: list[Loc]
) -> None:
    await assert_invalid(await post_json(gateway, body), *locs)
    await assert_nothing_published_and_alive(gateway, channel, shape)


async def test_unknown_type_says_where_to_look(
    gateway: Client, channel: AbstractChannel, shape: Topology
) -> None:
    response = await post_json(gateway, submission(type="diag.nope"))
    [error] = await assert_invalid(response, ["type"])
    assert error["type"] == "unknown_type"
    await assert_nothing_published_and_alive(gateway, channel, shape)


@pytest.mark.parametrize(
    ("type_", "payload", "loc"),
    [
        ("diag.echo", {}, ["payload", "message"]),
        ("diag.echo", {"message": 5}, ["payload", "message"]),
        ("diag.echo", {"message": None}, ["payload", "message"]),
        ("diag.echo", {"message": "x" * 10_001}, ["payload", "message"]),
        ("diag.echo", {"message": "hi", "extra": 1}, ["payload", "extra"]),
        ("diag.sleep", {"ms": -1}, ["payload", "ms"]),
        ("diag.sleep", {"ms": 3_600_001}, ["payload", "ms"]),
        ("diag.sleep", {"ms": "soon"}, ["payload", "ms"]),
        ("diag.sleep", {"ms": 1.5}, ["payload", "ms"]),
        ("diag.flaky", {"fail_times": 101}, ["payload", "fail_times"]),
        ("diag.fail", {"permanent": "maybe"}, ["payload", "permanent"]),
        ("email.send", {"to": [], "subject": "s", "text": "t"}, ["payload", "to"]),
        ("email.send", {"to": ["nobody"], "subject": "s", "text": "t"}, ["payload", "to", 0]),
        ("email.send", {"to": ["a@b.c"], "subject": "s\r\nBcc: x@y.z", "text": "t"},
         ["payload", "subject"]),
        ("webhook.deliver", {"url": "ftp://example.test/", "event": "e"}, ["payload", "url"]),
        ("webhook.deliver", {"url": "http://example.test/", "event": "a b"}, ["payload", "event"]),
        ("webhook.deliver", {"url": "http://example.test/", "event": "e", "data": []},
         ["payload", "data"]),
        ("media.thumbnail", {"source": "a.png", "format": "gif"}, ["payload", "format"]),
        ("media.thumbnail", {"source": "a.png", "width": 0}, ["payload", "width"]),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)  # fmt: skip
async def test_invalid_payload_is_422_at_the_field(
    gateway: Client,
    channel: AbstractChannel,
    shape: Topology,
    type_: str,
    payload: dict[str, Any],
    loc: Loc,
) -> None:
    response = await post_json(gateway, {"type": type_, "payload": payload})
    problem = await assert_problem(response, 422, "validation-failed")
    assert [e["loc"] for e in problem["errors"]] == [loc], problem["errors"]
    await assert_nothing_published_and_alive(gateway, channel, shape)


@pytest.mark.parametrize(
    ("options", "locs"),
    [
        pytest.param({"max_attempts": 0}, [["max_attempts"]], id="max_attempts-0"),
        pytest.param({"max_attempts": -1}, [["max_attempts"]], id="max_attempts-negative"),
        pytest.param({"max_attempts": 26}, [["max_attempts"]], id="max_attempts-over-cap"),
        pytest.param({"max_attempts": 2**70}, [["max_attempts"]], id="max_attempts-huge"),
        pytest.param({"max_attempts": "3"}, [["max_attempts"]], id="max_attempts-string"),
        pytest.param({"max_attempts": 3.0}, [["max_attempts"]], id="max_attempts-float"),
        pytest.param({"max_attempts": True}, [["max_attempts"]], id="max_attempts-bool"),
        pytest.param({"timeout_seconds": 0}, [["timeout_seconds"]], id="timeout-0"),
        pytest.param({"timeout_seconds": -5}, [["timeout_seconds"]], id="timeout-negative"),
        pytest.param({"timeout_seconds": 300.5}, [["timeout_seconds"]], id="timeout-over-cap"),
        pytest.param(
            {"type": "diag.sleep", "payload": {"ms": 1}, "timeout_seconds": 1201},
            [["timeout_seconds"]],
            id="timeout-over-the-type's-own-cap",
        ),
        pytest.param({"timeout_seconds": "30"}, [["timeout_seconds"]], id="timeout-string"),
        pytest.param({"timeout_seconds": True}, [["timeout_seconds"]], id="timeout-bool"),
        pytest.param({"priority": 10}, [["priority"]], id="priority-10"),
        pytest.param({"priority": -1}, [["priority"]], id="priority-negative"),
        pytest.param({"priority": "1"}, [["priority"]], id="priority-string"),
        pytest.param({"priority": 1.5}, [["priority"]], id="priority-float"),
        pytest.param({"priority": None}, [["priority"]], id="priority-null"),
        pytest.param(
            {"max_attempts": 26, "timeout_seconds": 301},
            [["max_attempts"], ["timeout_seconds"]],
            id="both-over-caps",
        ),
        pytest.param(
            {"max_attempts": 0, "priority": 10, "payload": {}},
            [["max_attempts"], ["priority"]],
            id="shape-errors-first-then-payload",
        ),
    ],
)
async def test_options_out_of_range_are_422(
    gateway: Client,
    channel: AbstractChannel,
    shape: Topology,
    options: dict[str, Any],
    locs: list[Loc],
) -> None:
    await assert_invalid(await post_json(gateway, {**VALID, **options}), *locs)
    await assert_nothing_published_and_alive(gateway, channel, shape)


# --- what must still be accepted ------------------------------------------------------
@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        pytest.param("application/json; charset=utf-8", VALID_BYTES, id="charset-utf-8"),
        pytest.param("application/json; charset=UTF-8", VALID_BYTES, id="charset-UTF-8"),
        pytest.param('application/json; charset="utf-8"', VALID_BYTES, id="charset-quoted"),
        pytest.param("application/json;charset=utf8", VALID_BYTES, id="charset-utf8"),
        pytest.param(JSON, b" \n\t" + VALID_BYTES + b"\r\n ", id="surrounding-whitespace"),
        pytest.param(
            JSON,
            b'{"type":"diag.echo","payload":{"message":"\\ud83d\\ude00 \xc3\xa9 a:b"}}',
            id="surrogate-pair-non-ascii-and-colon",
        ),
        pytest.param(JSON, orjson.dumps({**VALID, "max_attempts": None}), id="null-options"),
        pytest.param(
            JSON,
            orjson.dumps({**VALID, "max_attempts": 25, "timeout_seconds": 300, "priority": 9}),
            id="options-at-their-caps",
        ),
        pytest.param(JSON, orjson.dumps({**VALID, "timeout_seconds": 0.5}), id="timeout-float"),
    ],
)
async def test_edge_inputs_are_accepted(
    gateway: Client,
    channel: AbstractChannel,
    shape: Topology,
    content_type: str,
    body: bytes,
) -> None:
    response = await post(gateway, body, content_type)
    assert response.status == 202, await response.text()
    assert await message_count(channel, shape.names.work_queue("diag")) == 1


async def test_nesting_up_to_the_limit_is_accepted(
    gateway: Client, channel: AbstractChannel, shape: Topology
) -> None:
    # Submission, payload and data's own object are 3 levels around the nested value.
    response = await post(gateway, webhook(b'{"x":' + nested(MAX_JSON_DEPTH - 3) + b"}"))
    assert response.status == 202, await response.text()
    assert await message_count(channel, shape.names.work_queue("webhooks")) == 1


# --- other routes --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/tasks", "POST"),
        ("DELETE", "/v1/tasks", "POST"),
        ("PATCH", "/v1/tasks", "POST"),
        ("POST", "/v1/task-types", "GET"),
        ("POST", "/healthz", "GET"),
    ],
)
async def test_wrong_method_is_405_with_allow(
    gateway: Client,
    channel: AbstractChannel,
    shape: Topology,
    method: str,
    path: str,
    allow: str,
) -> None:
    response = await gateway.request(method, path, json=VALID)
    await assert_problem(response, 405, "method-not-allowed")
    assert allow in {m.strip() for m in response.headers["Allow"].split(",")}
    await assert_nothing_published_and_alive(gateway, channel, shape)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/v1/nope"),
        ("POST", "/v1/task"),
        ("POST", "/v1/tasks/"),
        ("POST", "/v2/tasks"),
        ("GET", "/v1/tasks/some-id"),
    ],
)
async def test_unknown_path_is_404(
    gateway: Client, channel: AbstractChannel, shape: Topology, method: str, path: str
) -> None:
    response = await gateway.request(method, path, json=VALID, allow_redirects=False)
    await assert_problem(response, 404, "not-found")
    await assert_nothing_published_and_alive(gateway, channel, shape)


async def test_task_types_lists_the_catalog_with_schemas(
    gateway: Client, channel: AbstractChannel, shape: Topology
) -> None:
    response = await gateway.get("/v1/task-types")
    assert response.status == 200 and response.content_type == JSON
    types: list[dict[str, Any]] = await response.json()
    listed = {t["name"]: t for t in types}
    assert len(types) == len(listed) == len(CATALOG) and set(listed) == set(CATALOG)
    for name, contract in CATALOG.items():
        entry = listed[name]
        assert entry["queue"] == contract.queue
        assert entry["max_attempts"] == contract.max_attempts
        assert entry["max_attempts_cap"] == contract.max_attempts_cap
        assert entry["timeout_seconds"] == contract.timeout_seconds
        assert entry["timeout_cap_seconds"] == contract.timeout_cap_seconds
        assert entry["payload_schema"] == contract.json_schema()
        assert entry["payload_schema"]["type"] == "object"
    await assert_nothing_published_and_alive(gateway, channel, shape)


async def test_health_and_readiness(
    gateway: Client, channel: AbstractChannel, shape: Topology
) -> None:
    healthz = await gateway.get("/healthz")
    assert healthz.status == 200 and await healthz.json() == {"status": "ok"}
    readyz = await gateway.get("/readyz")
    assert readyz.status == 200 and await readyz.json() == {"status": "ready"}
    await assert_nothing_published_and_alive(gateway, channel, shape)
