"""End to end through HTTP: submit → consumer → ack, retry tiers, dead letters."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from aio_pika.abc import AbstractChannel
from aiohttp.test_utils import TestClient

from tests.conftest import StartConsumer
from tests.support import Events, message_count
from warren.service.topology import Declared, Names, Topology
from warren.service.wire.dead import H_DEAD_ATTEMPTS, H_DEAD_ERROR_TYPE, H_DEAD_QUEUE, H_DEAD_REASON


async def submit(gateway: TestClient[Any, Any], body: dict[str, Any]) -> dict[str, Any]:
    response = await gateway.post("/v1/tasks", json=body)
    assert response.status == 202, await response.text()
    accepted: dict[str, Any] = await response.json()
    assert response.headers["Location"] == f"/v1/tasks/{accepted['id']}"
    return accepted


async def test_echo_runs_is_acked_and_reports_its_life(
    gateway: TestClient[Any, Any],
    start_consumer: StartConsumer,
    events: Events,
    channel: AbstractChannel,
    shape: Topology,
) -> None:
    consumer = await start_consumer("diag")
    accepted = await submit(gateway, {"type": "diag.echo", "payload": {"message": "hi"}})

    assert accepted["type"] == "diag.echo" and accepted["queue"] == "diag"
    assert accepted["status"] == "queued" and len(accepted["trace_id"]) == 32
    final = await events.final(accepted["id"])
    assert final["status"] == "succeeded"
    assert final["result"] == {"message": "hi"}
    assert final["trace_id"] == accepted["trace_id"]
    assert [e["status"] for e in events.of(accepted["id"])] == ["running", "succeeded"]
    # Acked: once the consumer is gone nothing comes back to the work queue.
    await consumer.stop(grace=1)
    assert await message_count(channel, shape.names.work_queue("diag")) == 0


async def test_flaky_succeeds_after_retries_waiting_each_tier(
    gateway: TestClient[Any, Any],
    start_consumer: StartConsumer,
    events: Events,
) -> None:
    await start_consumer("diag")
    accepted = await submit(gateway, {"type": "diag.flaky", "payload": {"fail_times": 2}})

    final = await events.final(accepted["id"])
    assert final["status"] == "succeeded" and final["attempt"] == 3
    assert final["result"] == {"succeeded_on_attempt": 3}
    retrying = events.of(accepted["id"], "retrying")
    assert [e["attempt"] for e in retrying] == [1, 2]
    # Backoff 0.2 s then 0.4 s, mapped to the nearest of the test tiers (0.2, 0.5, 1.0).
    assert [e["next_delay_seconds"] for e in retrying] == [0.2, 0.5]
    runs = events.of(accepted["id"], "running")
    starts = [datetime.fromisoformat(e["at"]) for e in runs]
    for before, after, event in zip(starts, starts[1:], retrying, strict=False):
        waited = (after - before).total_seconds()
        assert waited >= event["next_delay_seconds"] * 0.95, (waited, event)
    assert all(e["trace_id"] == accepted["trace_id"] for e in events.of(accepted["id"]))


async def test_failing_task_lands_in_its_dead_letter_queue_with_reason(
    gateway: TestClient[Any, Any],
    start_consumer: StartConsumer,
    events: Events,
    declared: Declared,
    channel: AbstractChannel,
) -> None:
    await start_consumer("diag")
    accepted = await submit(
        gateway, {"type": "diag.fail", "payload": {"permanent": False}, "max_attempts": 2}
    )

    final = await events.final(accepted["id"])
    assert final["status"] == "dead" and final["reason"] == "attempts-exhausted"
    assert final["attempt"] == 2
    # The gateway's keeper moved the dead letter from its queue into the store, whole.
    dead = await dead_letter(gateway, accepted["id"])
    assert dead["headers"][H_DEAD_REASON] == "attempts-exhausted" == dead["reason"]
    assert dead["headers"][H_DEAD_ERROR_TYPE] == "PlannedFailure" == dead["error_type"]
    assert dead["headers"][H_DEAD_ATTEMPTS] == 2 == dead["attempts"]
    assert dead["headers"][H_DEAD_QUEUE] == "diag" == dead["queue"]
    assert dead["payload"] == {"permanent": False}
    names = Names(declared_namespace(declared))
    assert await message_count(channel, names.dead_queue("diag")) == 0


async def test_permanent_failure_is_dead_after_one_attempt(
    gateway: TestClient[Any, Any],
    start_consumer: StartConsumer,
    events: Events,
    declared: Declared,
) -> None:
    await start_consumer("diag")
    accepted = await submit(gateway, {"type": "diag.fail", "payload": {"permanent": True}})

    final = await events.final(accepted["id"])
    assert final["status"] == "dead" and final["reason"] == "permanent"
    assert final["attempt"] == 1
    assert events.of(accepted["id"], "retrying") == []
    dead = await dead_letter(gateway, accepted["id"])
    assert dead["headers"][H_DEAD_REASON] == "permanent"
    assert dead["headers"][H_DEAD_ERROR_TYPE] == "Permanent"


async def dead_letter(gateway: TestClient[Any, Any], task_id: str) -> dict[str, Any]:
    """The task's dead letter, once the gateway's keeper has kept it."""
    async with asyncio.timeout(10):
        while (response := await gateway.get(f"/v1/dead-letters/{task_id}")).status == 404:  # noqa: ASYNC110 (polling over HTTP)
            await asyncio.sleep(0.05)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def declared_namespace(declared: Declared) -> str:
    return next(iter(declared.exchanges)).rsplit(".", 1)[0]
