"""Schemathesis against the real gateway, driven by the gateway's own ``/openapi.json``.

Why: the hand-written catalogue (``tests/http``)
covers the inputs someone thought of; this generates the rest from the
document every client reads, valid and invalid alike, and holds every answer
to it: never a 5xx, only documented status codes and content types, and each
body valid against its documented schema. A view that starts returning a field
its model lacks, or a status nobody documented, fails here.

The gateway runs on a real port and the real broker (its own namespace) in a
thread with its own event loop, because schemathesis and hypothesis drive
synchronous tests. Bounded for CI on two cores: a fixed number of examples per
operation, derandomized (the same cases on every run), and long-polls capped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import aio_pika
import orjson
import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis.strategies import SearchStrategy
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import make_settings
from tests.demo import CATALOG
from tests.support import postgres_schema
from warren.service import topology
from warren.service.http.app import create_app
from warren.service.http.auth import OPEN_PATHS, hash_token
from warren.service.settings import Settings

pytestmark = pytest.mark.timeout(180)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# WARREN_FUZZ_EXAMPLES=500 explores further (random cases each run); the default is CI's.
EXAMPLES = int(os.environ.get("WARREN_FUZZ_EXAMPLES", "40"))
DERANDOMIZE = "WARREN_FUZZ_EXAMPLES" not in os.environ
AnyCase = Case[Any]
MAX_WAIT = 0.05  # seconds a generated ``GET /v1/tasks/{id}?wait=`` may long-poll


class GatewayThread:
    """The gateway app served by an ``AppRunner`` on a loop in a thread of its own."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> str:
        self.runner = web.AppRunner(create_app(self.settings), access_log=None)
        self._thread.start()

        async def start() -> int:
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

        self.port = asyncio.run_coroutine_threadsafe(start(), self.loop).result(30)
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        asyncio.run_coroutine_threadsafe(self._delete_topology(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    async def _delete_topology(self) -> None:
        async with await aio_pika.connect_robust(self.settings.broker_url) as connection:
            shape = topology.build(self.settings, CATALOG.queues)
            await topology.delete(await connection.channel(), shape)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    gateway = GatewayThread(make_settings())  # API keys off: test_auth tests them
    url = gateway.start()
    try:
        yield url
    finally:
        gateway.stop()


@pytest.fixture(scope="module")
def api(base_url: str) -> schemathesis.BaseSchema:
    """The schema as a client gets it: fetched from the running gateway."""
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json")


OPERATIONS = [
    ("POST", "/v1/tasks"),
    ("POST", "/v1/tasks/batch"),
    ("GET", "/v1/tasks"),
    ("GET", "/v1/tasks/{id}"),
    ("DELETE", "/v1/tasks/{id}"),
    ("GET", "/v1/tasks/{id}/events"),
    ("GET", "/v1/task-types"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
]


def _bounded(case: AnyCase) -> AnyCase:
    """Cap a long-poll: a generated ``wait`` of up to 60 s would only make the run slow."""
    query: dict[str, Any] | None = case.query
    if query and "wait" in query:
        with contextlib.suppress(TypeError, ValueError):  # an invalid wait stays invalid
            query["wait"] = min(float(query["wait"]), MAX_WAIT)
    return case


def fuzz(
    strategy: SearchStrategy[AnyCase],
    base_url: str,
    examples: int = EXAMPLES,
    headers: dict[str, str] | None = None,
) -> Counter[int]:
    """Send ``examples`` generated cases, check every answer; the statuses seen, counted."""
    session = requests.Session()
    statuses: Counter[int] = Counter()

    @settings(
        max_examples=examples,
        derandomize=DERANDOMIZE,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: AnyCase) -> None:
        response = _bounded(case).call_and_validate(
            base_url=base_url, session=session, headers=headers, checks=CHECKS, timeout=10
        )
        statuses[response.status_code] += 1

    run()
    return statuses


WITHOUT_INPUT = {"/v1/task-types", "/healthz", "/readyz", "/metrics", "/openapi.json"}
CASES = [
    pytest.param(method, path, mode, id=f"{method} {path} {mode.value}")
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or path not in WITHOUT_INPUT  # nothing to make invalid
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_every_answer_conforms_to_the_document(
    api: schemathesis.BaseSchema, base_url: str, method: str, path: str, mode: GenerationMode
) -> None:
    statuses = fuzz(api[path][method].as_strategy(generation_mode=mode), base_url)
    if (method, path, mode) == ("POST", "/v1/tasks", GenerationMode.POSITIVE):
        assert statuses[202] > 0, statuses  # the generator does reach the broker
    if (method, path, mode) == ("POST", "/v1/tasks/batch", GenerationMode.POSITIVE):
        assert statuses[200] > 0, statuses


@pytest.fixture(scope="module")
def task_id(base_url: str) -> str:
    """A task the gateway accepted (queued: no consumer runs here)."""
    body: dict[str, Any] = {"type": "diag.echo", "payload": {"message": "fuzz"}}
    response = requests.post(f"{base_url}/v1/tasks", json=body, timeout=10)
    assert response.status_code == 202, response.text
    task: str = response.json()["id"]
    return task


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_answers_about_a_real_task_conform(
    api: schemathesis.BaseSchema, base_url: str, task_id: str, method: str
) -> None:
    """Records, not just 404s: the id is one the gateway accepted; the rest is generated."""
    operation = api["/v1/tasks/{id}"][method]
    statuses = fuzz(operation.as_strategy(path_parameters={"id": task_id}), base_url, 15)
    assert statuses[200 if method == "GET" else 202] > 0, statuses


# --- with API keys on: the refusals are as documented too ----------------------------------
READER = "wrn_reader_" + "r" * 40


@pytest.fixture(scope="module")
def keyed_url() -> Iterator[str]:
    keys = [{"id": "reader", "token_sha256": hash_token(READER), "scopes": ["read"]}]
    gateway = GatewayThread(
        make_settings(auth_disabled=False, api_keys=orjson.dumps(keys).decode())
    )
    url = gateway.start()
    try:
        yield url
    finally:
        gateway.stop()


PROTECTED = [op for op in OPERATIONS if op[1] not in OPEN_PATHS]


@pytest.mark.parametrize(("method", "path"), PROTECTED, ids=[" ".join(op) for op in PROTECTED])
def test_without_a_key_every_protected_route_is_a_documented_401(
    api: schemathesis.BaseSchema, keyed_url: str, method: str, path: str
) -> None:
    statuses = fuzz(api[path][method].as_strategy(), keyed_url, 10)
    assert set(statuses) == {401}, statuses


def test_a_key_without_the_scope_is_a_documented_403(
    api: schemathesis.BaseSchema, keyed_url: str
) -> None:
    bearer = {"Authorization": f"Bearer {READER}"}
    statuses = fuzz(api["/v1/tasks"]["POST"].as_strategy(), keyed_url, 10, bearer)
    assert set(statuses) == {403}, statuses


# --- the query side on PostgreSQL: its errors for odd input must not read as outages ---------
@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    schema = postgres_schema()
    loop = asyncio.new_event_loop()
    try:
        yield loop.run_until_complete(schema.__aenter__())
    finally:
        loop.run_until_complete(schema.__aexit__(None, None, None))
        loop.close()


@pytest.fixture(scope="module")
def postgres_base_url(postgres_url: str) -> Iterator[str]:
    gateway = GatewayThread(make_settings(store_url=postgres_url))
    url = gateway.start()
    try:
        yield url
    finally:
        gateway.stop()


READS = [op for op in OPERATIONS if op[1].startswith("/v1/tasks") and op != ("POST", "/v1/tasks")]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize(("method", "path"), READS, ids=[" ".join(op) for op in READS])
def test_reads_on_postgresql_conform(
    api: schemathesis.BaseSchema,
    postgres_base_url: str,
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    """No 5xx and documented answers for generated queries, ids and cursors on PostgreSQL."""
    fuzz(api[path][method].as_strategy(generation_mode=mode), postgres_base_url)
