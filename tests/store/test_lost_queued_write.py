"""A gateway killed right after its 202s loses its batched ``queued`` writes: the tasks'
events alone must rebuild each record whole, owner included, or the owner's ``GET`` says
404 for a task that ran (and a client that then resubmits runs the work twice).

Every test publishes a task or its events as the gateway or a consumer would, without
the gateway's ``queued`` write ever happening, and reads the record with API keys on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import StartConsumer
from tests.store.support import Client, eventually
from tests.support import first_attempt
from tests.test_auth import bearer, keyed_settings
from warren.service.amqp import Publisher
from warren.service.http.app import create_app
from warren.service.settings import Settings
from warren.service.store.model import Status
from warren.service.topology import Declared, Names, Topology
from warren.service.wire import Envelope, event_message, task_change

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
async def keyed(settings: Settings, channel: AbstractChannel) -> AsyncIterator[Client]:
    """A gateway with API keys on (``shop`` and ``bank`` read their own tasks only)."""
    async with TestClient(TestServer(create_app(keyed_settings(settings)))) as client:
        yield client


def shops_task(type_: str, payload: dict[str, Any]) -> Envelope:
    """A task as the gateway publishes it for the client ``shop``, created a while ago
    (so a record that took its creation time from an event's time would show it)."""
    return replace(
        first_attempt(type_, payload),
        submitter="shop",
        created_at=datetime.now(UTC) - timedelta(seconds=30),
        traceparent=TRACEPARENT,
    )


async def owners_record(gateway: Client, task_id: str, status: str) -> dict[str, Any]:
    """The record as ``shop`` reads it, once it has ``status``."""
    seen: dict[str, Any] = {}

    async def reached() -> bool:
        response = await gateway.get(f"/v1/tasks/{task_id}", headers=bearer("shop"))
        if response.status == 200:
            seen.update(await response.json())
        return seen.get("status") == status

    await eventually(reached)
    return seen


def assert_whole(record: dict[str, Any], envelope: Envelope) -> None:
    assert record["submitter"] == "shop"
    assert record["created_at"] == envelope.created_at.isoformat()
    assert (record["type"], record["queue"]) == (envelope.type, envelope.queue)
    assert (record["max_attempts"], record["trace_id"]) == (5, envelope.trace_id)


async def test_a_task_that_ran_without_its_queued_write_is_whole_and_its_owners(
    keyed: Client, declared: Declared, settings: Settings, start_consumer: StartConsumer
) -> None:
    # Given a task the gateway published and never wrote down (it died after the 202)
    envelope = shops_task("diag.echo", {"message": "hi"})
    exchange = declared.exchanges[Names(settings.namespace).work_exchange]
    await exchange.publish(envelope.to_message(), routing_key="diag")
    # When a consumer runs it
    await start_consumer("diag")
    # Then its owner sees the whole record, and nobody else sees it at all
    record = await owners_record(keyed, envelope.id, "succeeded")
    assert_whole(record, envelope)
    assert record["result"] == {"message": "hi"} and record["attempts"][0]["outcome"] == "succeeded"
    assert (await keyed.get(f"/v1/tasks/{envelope.id}", headers=bearer("bank"))).status == 404
    mine = await (await keyed.get("/v1/tasks", headers=bearer("shop"))).json()
    theirs = await (await keyed.get("/v1/tasks", headers=bearer("bank"))).json()
    assert [r["id"] for r in mine["items"]] == [envelope.id] and theirs["items"] == []


OUTCOMES: list[tuple[Status, dict[str, Any]]] = [
    (Status.RUNNING, {}),
    (Status.RETRYING, {"next_delay_seconds": 5.0, "error_type": "FlakyError", "error": "x"}),
    (Status.SUCCEEDED, {"result": {"ok": True}}),
    (Status.DEAD, {"reason": "permanent", "error_type": "Permanent", "error": "no"}),
    (Status.CANCELLED, {"reason": "cancel-requested"}),
]


async def test_any_single_event_makes_a_whole_record_its_owner_sees(
    keyed: Client, connection: AbstractRobustConnection, shape: Topology
) -> None:
    # Given one task per status, of which only that one event ever arrives
    publisher = await Publisher.open(connection, shape, 5.0)
    tasks = []
    for status, details in OUTCOMES:
        envelope = shops_task("diag.flaky", {"fail_times": 0})
        change = task_change(envelope, status, worker="w", started_at=datetime.now(UTC), **details)
        await publisher.send_event(event_message(change))
        tasks.append((envelope, status))
    # Then each record is whole, its owner's, and no one else's
    for envelope, status in tasks:
        assert_whole(await owners_record(keyed, envelope.id, status.value), envelope)
        response = await keyed.get(f"/v1/tasks/{envelope.id}", headers=bearer("bank"))
        assert response.status == 404
    await publisher.close()
