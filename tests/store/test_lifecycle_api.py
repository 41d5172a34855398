"""A task's whole life through the API, on the real broker and both stores."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import orjson
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import StartConsumer
from tests.store.support import Client, eventually, get_task, recorder_of, status_becomes, submit
from warren.service.http.app import create_app
from warren.service.settings import Settings
from warren.service.store import TaskStore
from warren.service.store.model import new_task_id
from warren.service.topology import Declared, Names

ECHO = {"type": "diag.echo", "payload": {"message": "hi"}}
RANK = {"queued": 1, "running": 2, "retrying": 3, "succeeded": 4, "dead": 4, "cancelled": 4}


async def test_a_queued_task_is_visible_at_once_and_then_stored(
    gateway: Client, store: TaskStore
) -> None:
    accepted = await submit(gateway, ECHO, **{"X-Warren-Client": "shop"})
    record = await get_task(gateway, accepted["id"])  # before the recorder's batch, too
    assert record["status"] == "queued" and record["attempt"] == 1
    assert record["trace_id"] == accepted["trace_id"] and record["submitter"] == "shop"
    assert record["created_at"] == accepted["created_at"] and record["attempts"] == []

    async def stored() -> bool:
        return await store.get(accepted["id"]) is not None

    await eventually(stored)


async def test_running_then_succeeded_with_its_attempt_history(
    gateway: Client, start_consumer: StartConsumer
) -> None:
    await start_consumer("diag")
    accepted = await submit(gateway, {"type": "diag.sleep", "payload": {"ms": 400}})
    running = await status_becomes(gateway, accepted["id"], "running")
    assert running["started_at"] and running["attempts"][0]["outcome"] is None
    done = await get_task(gateway, accepted["id"], wait=10)
    assert done["status"] == "succeeded" and done["result"] == {"slept_ms": 400}
    [attempt] = done["attempts"]
    assert attempt["outcome"] == "succeeded" and attempt["worker"]
    assert attempt["started_at"] == running["started_at"] <= attempt["finished_at"]
    assert done["finished_at"] == attempt["finished_at"]


async def test_a_dead_task_says_why(gateway: Client, start_consumer: StartConsumer) -> None:
    await start_consumer("diag")
    accepted = await submit(gateway, {"type": "diag.fail", "payload": {"permanent": True}})
    dead = await get_task(gateway, accepted["id"], wait=10)
    assert (dead["status"], dead["reason"], dead["error_type"]) == (
        "dead",
        "permanent",
        "Permanent",
    )
    assert dead["attempts"][0]["outcome"] == "dead"


async def test_retries_show_in_the_history_and_the_stream_never_goes_back(
    gateway: Client, start_consumer: StartConsumer
) -> None:
    accepted = await submit(gateway, {"type": "diag.flaky", "payload": {"fail_times": 2}})
    stream = asyncio.create_task(_stream(gateway, accepted["id"]))
    await asyncio.sleep(0.2)  # the stream shows `queued` before any consumer runs
    await start_consumer("diag")
    records = await asyncio.wait_for(stream, 20)
    assert records[0]["status"] == "queued" and records[-1]["status"] == "succeeded"
    positions = [(r["attempt"], RANK[r["status"]]) for r in records]
    assert positions == sorted(positions)  # never backwards
    record = await get_task(gateway, accepted["id"])
    assert [(a["attempt"], a["outcome"]) for a in record["attempts"]] == [
        (1, "retrying"),
        (2, "retrying"),
        (3, "succeeded"),
    ]
    assert record["attempts"][0]["error_type"] == "FlakyError"
    assert record["attempts"][1]["next_delay_seconds"] == 0.5
    assert (record["error_type"], record["attempt"]) == ("FlakyError", 3)


async def _stream(gateway: Client, task_id: str) -> list[dict[str, Any]]:
    """The records of the task's Server-Sent Events, until the server ends the stream."""
    seen: list[dict[str, Any]] = []
    async with gateway.get(f"/v1/tasks/{task_id}/events") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        async for line in response.content:
            if line.startswith(b"data:"):
                seen.append(orjson.loads(line[5:]))
    versions = [r["version"] for r in seen]
    assert versions == sorted(set(versions)), versions  # each state once, in order
    return seen


async def test_long_poll_and_stream_answer_as_soon_as_the_task_ends(
    gateway: Client, start_consumer: StartConsumer
) -> None:
    await start_consumer("diag")
    started = time.monotonic()
    accepted = await submit(gateway, {"type": "diag.sleep", "payload": {"ms": 300}})
    poll = asyncio.create_task(get_task(gateway, accepted["id"], wait=30))
    stream = asyncio.create_task(_stream(gateway, accepted["id"]))
    record, seen = await asyncio.gather(poll, stream)
    elapsed = time.monotonic() - started
    assert record["status"] == "succeeded" and seen[-1]["status"] == "succeeded"
    assert 0.3 <= elapsed < 2.0, elapsed
    again = await gateway.get(  # an EventSource reconnecting after the end is told to stop
        f"/v1/tasks/{accepted['id']}/events", headers={"Last-Event-ID": str(record["version"])}
    )
    assert again.status == 204


async def test_long_poll_gives_up_after_its_wait(gateway: Client) -> None:
    accepted = await submit(gateway, ECHO)  # no consumer: it stays queued
    started = time.monotonic()
    record = await get_task(gateway, accepted["id"], wait=0.5)
    assert record["status"] == "queued" and 0.45 <= time.monotonic() - started < 2
    started = time.monotonic()  # an id nobody knows is waited for, then it is a 404
    response = await gateway.get(f"/v1/tasks/{new_task_id()}", params={"wait": "0.3"})
    assert response.status == 404 and 0.25 <= time.monotonic() - started < 2


async def test_unknown_ids_and_bad_parameters_are_problems(gateway: Client) -> None:
    for path in (
        f"/v1/tasks/{new_task_id()}",
        "/v1/tasks/not-an-id",
        f"/v1/tasks/{new_task_id()}/events",
    ):
        response = await gateway.get(path)
        assert response.status == 404
        assert (await response.json())["code"] == "not-found"
    for query in ("status=nope", "since=yesterday", "since=2030-01-01T00:00:00", "limit=0",
                  "limit=x", "cursor=abc", "wait=-1"):  # fmt: skip
        path = "/v1/tasks" if not query.startswith("wait") else f"/v1/tasks/{new_task_id()}"
        response = await gateway.get(f"{path}?{query}")
        assert response.status == 400, query
        assert response.content_type == "application/problem+json"


async def test_list_filters_and_pages_newest_first(
    gateway: Client, start_consumer: StartConsumer
) -> None:
    await start_consumer("diag")
    ids = [(await submit(gateway, ECHO))["id"] for _ in range(5)]
    failed = (await submit(gateway, {"type": "diag.fail", "payload": {"permanent": True}}))["id"]
    for task in [*ids, failed]:
        await get_task(gateway, task, wait=10)
    response = await gateway.get("/v1/tasks", params={"status": "dead", "type": "diag.fail"})
    page = await response.json()
    assert [r["id"] for r in page["items"]] == [failed] and page["next_cursor"] is None
    listed: list[str] = []
    cursor = ""
    while True:
        response = await gateway.get(
            "/v1/tasks", params={"limit": "2", "cursor": cursor, "queue": "diag"}
        )
        page = await response.json()
        listed += [r["id"] for r in page["items"]]
        assert all("attempts" not in r for r in page["items"])
        if not (cursor := page["next_cursor"]):
            break
    assert listed == [failed, *reversed(ids)]


async def test_duplicate_and_reordered_events_end_in_the_right_record(
    gateway: Client, declared: Declared, settings: Settings
) -> None:
    task = new_task_id()
    events = _flaky_life(task)
    shuffled = [*events, *events[1:3], events[0]]
    random.Random(11).shuffle(shuffled)
    exchange = declared.exchanges[Names(settings.namespace).events_exchange]
    for body in shuffled:
        await exchange.publish(_event_message(body), f"diag.{body['status']}")
    record = await get_task(gateway, task, wait=10)
    assert record["status"] == "succeeded" and record["result"] == {"ok": 2}
    assert [(a["attempt"], a["outcome"]) for a in record["attempts"]] == [
        (1, "retrying"),
        (2, "succeeded"),
    ]
    late = {**events[1], "at": datetime.now(UTC).isoformat()}  # running of attempt 1, again
    await exchange.publish(_event_message(late), "diag.running")
    await asyncio.sleep(0.3)
    assert await get_task(gateway, task) == record


def _flaky_life(task: str) -> list[dict[str, Any]]:
    t0 = datetime.now(UTC)

    def event(status: str, attempt: int, ms: int, **extra: Any) -> dict[str, Any]:
        at = (t0 + timedelta(milliseconds=ms)).isoformat()
        return {"task_id": task, "type": "diag.flaky", "queue": "diag", "status": status,
                "attempt": attempt, "max_attempts": 3, "at": at, "trace_id": None,
                "worker": "w", **extra}  # fmt: skip

    return [
        event("running", 1, 0),
        event("retrying", 1, 5, error_type="FlakyError", error="x", next_delay_seconds=0.2),
        event("running", 2, 300),
        event("succeeded", 2, 305, result={"ok": 2}),
    ]


def _event_message(body: dict[str, Any]) -> aio_pika.Message:
    return aio_pika.Message(
        orjson.dumps(body),
        content_type="application/json",
        message_id=f"{body['task_id']}.{body['attempt']}.{body['status']}",
    )


async def test_a_restarted_gateway_keeps_every_record_and_catches_up(
    settings: Settings, declared: Declared, start_consumer: StartConsumer
) -> None:
    await start_consumer("diag")
    async with TestClient(TestServer(create_app(settings))) as first:
        ids = [(await submit(first, ECHO))["id"] for _ in range(10)]
        before = [await get_task(first, task, wait=10) for task in ids]
    assert all(r["status"] == "succeeded" for r in before)
    # Events published while no gateway runs wait in the durable recorder queue.
    missed = new_task_id()
    exchange = declared.exchanges[Names(settings.namespace).events_exchange]
    for body in _flaky_life(missed):
        await exchange.publish(_event_message(body), f"diag.{body['status']}")
    async with TestClient(TestServer(create_app(settings))) as second:
        assert [await get_task(second, task) for task in ids] == before
        assert (await get_task(second, missed, wait=10))["status"] == "succeeded"


async def test_a_malformed_event_is_dropped_without_holding_up_the_rest(
    gateway: Client, declared: Declared, settings: Settings
) -> None:
    exchange = declared.exchanges[Names(settings.namespace).events_exchange]
    await exchange.publish(aio_pika.Message(b"not json", message_id="x"), "diag.running")
    await exchange.publish(aio_pika.Message(b'{"task_id": "nope"}'), "diag.running")
    task = new_task_id()
    for body in _flaky_life(task):
        await exchange.publish(_event_message(body), f"diag.{body['status']}")
    assert (await get_task(gateway, task, wait=10))["status"] == "succeeded"
    assert recorder_of(gateway).stats.malformed == 2
