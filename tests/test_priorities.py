"""Priorities that work: a higher-priority task waiting in a work queue runs before lower ones,
and a priority the queues cannot honour is refused rather than silently ignored."""

from __future__ import annotations

from typing import Any

import pytest
from aio_pika.abc import AbstractChannel
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import StartConsumer, make_settings
from tests.demo import CATALOG
from tests.support import Events
from warren.service import topology
from warren.service.http.app import create_app
from warren.service.settings import Settings


async def _submit(gateway: TestClient[Any, Any], priority: int, message: str) -> str:
    body = {"type": "diag.echo", "payload": {"message": message}, "priority": priority}
    response = await gateway.post("/v1/tasks", json=body)
    assert response.status == 202, await response.text()
    task_id: str = (await response.json())["id"]
    return task_id


async def test_a_high_priority_task_overtakes_a_queue_of_low_ones(
    gateway: TestClient[Any, Any], start_consumer: StartConsumer, events: Events
) -> None:
    # Given a work queue holding 30 low-priority tasks, then one high-priority task
    low = [await _submit(gateway, 0, f"low {i}") for i in range(30)]
    high = await _submit(gateway, 9, "high")
    # When one consumer running one task at a time starts on it
    await start_consumer("diag", concurrency=1)
    # Then the high-priority task runs first, and the low ones keep their order
    started = await events.wait_for(lambda e: sum(x["status"] == "running" for x in e) == 31)
    order = [e["task_id"] for e in started if e["status"] == "running"]
    assert order[0] == high
    assert order[1:] == low


def test_classic_work_queues_are_priority_queues_of_the_configured_levels() -> None:
    def work_args(settings: Settings) -> dict[str, Any]:
        shape = topology.build(settings, ["diag"])
        spec = next(q for q in shape.queues if q.name == shape.names.work_queue("diag"))
        return spec.args

    assert work_args(make_settings())["x-max-priority"] == 9  # priorities 0-9: 10 levels
    assert work_args(make_settings(priority_levels=4))["x-max-priority"] == 3
    assert "x-max-priority" not in work_args(make_settings(priority_levels=1))
    assert "x-max-priority" not in work_args(make_settings(queue_type="quorum"))
    # only the work queues: retry tiers and dead letters keep their arguments
    shape = topology.build(make_settings(), ["diag"])
    others = [q for q in shape.queues if q.name != shape.names.work_queue("diag")]
    assert all("x-max-priority" not in q.args for q in others)


@pytest.mark.parametrize(
    ("overrides", "priority", "status"),
    [
        ({"queue_type": "quorum"}, 0, 202),
        ({"queue_type": "quorum"}, 1, 422),
        ({"priority_levels": 4}, 3, 202),
        ({"priority_levels": 4}, 4, 422),
        ({}, 9, 202),
    ],
)
async def test_a_priority_the_queues_cannot_honour_is_a_422(
    channel: AbstractChannel, overrides: dict[str, Any], priority: int, status: int
) -> None:
    settings = make_settings(**overrides)
    body = {"type": "diag.echo", "payload": {"message": "p"}, "priority": priority}
    try:
        async with TestClient(TestServer(create_app(settings))) as client:
            response = await client.post("/v1/tasks", json=body)
            assert response.status == status, await response.text()
            if status == 422:
                problem = await response.json()
                assert problem["code"] == "validation-failed"
                assert [e["loc"] for e in problem["errors"]] == [["priority"]]
    finally:
        shape = topology.build(settings, CATALOG.queues)
        await topology.delete(channel, shape)
