"""What every bad-input test of the gateway asserts: the exact problem, and nothing published."""

from __future__ import annotations

from typing import Any

import orjson
from aio_pika.abc import AbstractChannel
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from tests.demo import CATALOG
from tests.support import message_count
from warren.service.http.problems import PROBLEM_JSON
from warren.service.topology import Topology

Client = TestClient[Any, Any]
VALID: dict[str, Any] = {"type": "diag.echo", "payload": {"message": "hi"}}


async def assert_problem(response: ClientResponse, status: int, code: str) -> dict[str, Any]:
    text = await response.text()
    assert response.status == status, text
    assert response.headers["Content-Type"] == PROBLEM_JSON
    problem: dict[str, Any] = orjson.loads(text)
    assert problem["status"] == status
    assert problem["code"] == code
    assert problem["type"] == f"/problems/{code}"
    assert isinstance(problem["title"], str) and problem["title"]
    return problem


async def assert_nothing_published_and_alive(
    gateway: Client, channel: AbstractChannel, shape: Topology
) -> None:
    for queue in CATALOG.queues:
        assert await message_count(channel, shape.names.work_queue(queue)) == 0, queue
    response = await gateway.post("/v1/tasks", json=VALID)
    assert response.status == 202, await response.text()
    assert await message_count(channel, shape.names.work_queue("diag")) == 1
