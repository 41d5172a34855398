"""Submit and wait: ``POST /v1/tasks?wait=S`` answers with the task's final record when it ends
within S seconds, else with the usual 202; on both stores."""

from __future__ import annotations

import time
from typing import Any

from aio_pika.abc import AbstractChannel

from tests.conftest import StartConsumer
from tests.store.support import Client
from tests.support import message_count
from warren.service.topology import Topology


async def _post(gateway: Client, body: dict[str, Any], wait: str) -> tuple[int, Any, str]:
    response = await gateway.post("/v1/tasks", params={"wait": wait}, json=body)
    return response.status, await response.json(), response.headers.get("Location", "")


async def test_the_handlers_result_comes_in_the_same_response(
    gateway: Client, start_consumer: StartConsumer
) -> None:
    await start_consumer("diag")
    body = {"type": "diag.echo", "payload": {"message": "sync"}}
    status, record, location = await _post(gateway, body, "10")
    assert status == 200, record
    assert record["status"] == "succeeded" and record["result"] == {"message": "sync"}
    assert location == f"/v1/tasks/{record['id']}"
    assert [a["outcome"] for a in record["attempts"]] == ["succeeded"]


async def test_a_task_that_fails_answers_with_its_error(
    gateway: Client, start_consumer: StartConsumer
) -> None:
    await start_consumer("diag")
    body = {"type": "diag.fail", "payload": {"permanent": True}}
    status, record, _ = await _post(gateway, body, "10")
    assert status == 200, record
    assert record["status"] == "dead" and record["reason"] == "permanent"
    assert record["error_type"] and record["error"]


async def test_a_task_not_done_in_time_is_the_usual_202(
    gateway: Client, start_consumer: StartConsumer
) -> None:
    await start_consumer("diag")
    body = {"type": "diag.sleep", "payload": {"ms": 3000}}
    started = time.monotonic()
    status, accepted, location = await _post(gateway, body, "0.5")
    assert status == 202, accepted
    assert 0.5 <= time.monotonic() - started < 2.5
    assert accepted["status"] == "queued" and location == f"/v1/tasks/{accepted['id']}"


async def test_a_bad_wait_is_a_400_and_publishes_nothing(
    gateway: Client, channel: AbstractChannel, shape: Topology
) -> None:
    for wait in ("-1", "61", "nan", "soon"):
        response = await gateway.post(
            "/v1/tasks", params={"wait": wait}, json={"type": "diag.echo", "payload": {}}
        )
        assert response.status == 400, wait
        assert (await response.json())["errors"][0]["loc"] == ["query", "wait"]
    assert await message_count(channel, shape.names.work_queue("diag")) == 0
