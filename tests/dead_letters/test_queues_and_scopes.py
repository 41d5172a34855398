"""``GET /v1/queues`` against the broker's own counts; who may browse, replay and discard.

Why: an operator reads depths off this API instead of the management plugin (which may be
off), so they must be the broker's; and replay or discard rewrite history, so only an
``admin`` key may do them, while a ``read`` key sees only its own dead letters.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aio_pika.abc import AbstractChannel
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import StartConsumer
from tests.dead_letters.support import Gateway, get_json, submit, wait_dead
from tests.dead_letters.test_dead_letters import FLAKY_ONCE, queue_state
from tests.support import message_count, queue_counts
from tests.test_auth import bearer, keyed_settings
from warren.service.http.app import create_app
from warren.service.settings import Settings
from warren.service.topology import Names


async def test_queue_depths_are_the_brokers_own_counts(
    gateway: Gateway, channel: AbstractChannel, settings: Settings, start_consumer: StartConsumer
) -> None:
    names = Names(settings.namespace)
    for _ in range(7):
        await submit(gateway, {"type": "diag.echo", "payload": {"message": "hi"}})

    state = await queue_state(gateway, "diag")
    assert state["ready"] == 7 == await message_count(channel, names.work_queue("diag"))
    assert state["consumers"] == 0 and state["unacked"] == 0 and state["dead_letters"] == 0
    assert set(state["retry_tiers"]) == {"200ms", "500ms", "1s"} and state["retrying"] == 0
    assert state["scheduled"] == 0
    async with asyncio.timeout(10):  # the records' `queued` writes are batched: soon, not now
        while (await queue_state(gateway, "diag"))["rates"]["publish"] < 7 / 60 - 0.01:  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    await start_consumer("diag")
    async with asyncio.timeout(10):
        while (state := await queue_state(gateway, "diag"))["ready"]:  # noqa: ASYNC110 (HTTP)
            await asyncio.sleep(0.05)
    ready, consumers = await queue_counts(channel, names.work_queue("diag"))
    assert (state["ready"], state["consumers"]) == (ready, consumers) == (0, 1)


async def test_scheduled_counts_each_queues_delayed_tasks_from_the_store(
    gateway: Gateway, channel: AbstractChannel, settings: Settings
) -> None:
    # Given three diag tasks delayed by an hour and one due now
    names = Names(settings.namespace)
    later = {"type": "diag.echo", "payload": {"message": "later"}, "delay_seconds": 3600}
    ids = [await submit(gateway, later) for _ in range(3)]
    await submit(gateway, {"type": "diag.echo", "payload": {"message": "now"}})
    # When the queues are listed (the records' writes are batched: soon, not now)
    async with asyncio.timeout(10):
        while (state := await queue_state(gateway, "diag"))["scheduled"] < 3:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    # Then diag has 3 scheduled (none of them in its work queue yet), other queues none
    assert state["scheduled"] == 3 and state["ready"] == 1
    assert await message_count(channel, names.work_queue("diag")) == 1
    body = await get_json(gateway, "/v1/queues")
    assert all(q["scheduled"] == 0 for q in body["queues"] if q["name"] != "diag")
    # And a scheduled task cancelled stays counted until it is due (its record says so)
    await gateway.delete(f"/v1/tasks/{ids[0]}")
    assert (await get_json(gateway, f"/v1/tasks/{ids[0]}"))["status"] == "scheduled"
    assert (await queue_state(gateway, "diag"))["scheduled"] == 3


@pytest.fixture
async def keyed(settings: Settings, channel: AbstractChannel) -> AsyncIterator[Gateway]:
    async with TestClient(TestServer(create_app(keyed_settings(settings)))) as client:
        yield client


async def test_replay_and_discard_need_admin_and_a_reader_sees_only_its_own(
    keyed: Gateway, start_consumer: StartConsumer
) -> None:
    await start_consumer("diag")
    shop = await _submit_as(keyed, "shop")
    bank = await _submit_as(keyed, "bank")
    await wait_dead(keyed, 2, headers=bearer("ops"))

    for path in ("/v1/dead-letters/replay", "/v1/dead-letters/discard"):
        refused = await keyed.post(path, json={"ids": [shop]}, headers=bearer("shop"))
        assert refused.status == 403
    mine = await keyed.get("/v1/dead-letters", headers=bearer("shop"))
    assert [x["id"] for x in (await mine.json())["items"]] == [shop]
    theirs = await keyed.get(f"/v1/dead-letters/{bank}", headers=bearer("shop"))
    assert theirs.status == 404
    assert (await keyed.get("/v1/queues", headers=bearer("reader"))).status == 200
    replay = await keyed.post(
        "/v1/dead-letters/replay", json={"ids": [bank]}, headers=bearer("ops")
    )
    assert await replay.json() == {"replayed": 1}


async def _submit_as(gateway: Gateway, name: str) -> str:
    response = await gateway.post("/v1/tasks", json=FLAKY_ONCE, headers=bearer(name))
    assert response.status == 202, await response.text()
    task_id: str = (await response.json())["id"]
    return task_id
