"""A store slower than the intake slows the intake: a gateway holds at most
``recorder_max_unwritten_submissions`` accepted tasks whose ``queued`` record is not written,
then answers ``503 store-behind`` (each task of a batch too) instead of growing without bound;
the tasks it accepted stay known to the task API and are written once the store is back."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

from aio_pika.abc import AbstractChannel
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import make_settings
from tests.store.support import eventually
from tests.support import message_count
from warren.service.http.app import create_app
from warren.service.settings import Settings
from warren.service.store.sql import TABLE
from warren.service.topology import Topology

ECHO = {"type": "diag.echo", "payload": {"message": "m"}}


async def test_a_stalled_store_bounds_the_intake_and_loses_nothing(
    settings: Settings, channel: AbstractChannel, shape: Topology
) -> None:
    bounded = make_settings(
        namespace=settings.namespace,
        store_url=settings.store_url,
        recorder_max_unwritten_submissions=3,
        publish_timeout_seconds=0.5,
    )
    async with TestClient(TestServer(create_app(bounded))) as client:
        # Given a store another writer holds locked (the recorder's writes wait, then retry)
        path = settings.store_url.removeprefix("sqlite:///")
        lock = sqlite3.connect(path, isolation_level=None, timeout=10, check_same_thread=False)
        await asyncio.to_thread(lock.execute, "BEGIN EXCLUSIVE")  # the loop runs meanwhile
        try:
            # When more tasks come than the bound of unwritten records
            accepted = [await client.post("/v1/tasks", json=ECHO) for _ in range(3)]
            refused = await client.post("/v1/tasks", json=ECHO)
            batch = await client.post("/v1/tasks/batch", json={"tasks": [ECHO, ECHO]})
            # Then the first 3 are accepted and known to the task API, the rest refused
            assert [r.status for r in accepted] == [202, 202, 202]
            ids = [(await r.json())["id"] for r in accepted]
            for task_id in ids:
                assert (await client.get(f"/v1/tasks/{task_id}")).status == 200
            assert refused.status == 503 and refused.headers["Retry-After"]
            assert (await refused.json())["code"] == "store-behind"
            items = (await batch.json())["items"]
            assert [i["problem"]["code"] for i in items] == ["store-behind"] * 2
            # and only the accepted tasks were published
            assert await message_count(channel, shape.names.work_queue("diag")) == 3
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        # And once the store is back, their records are written and the intake reopens
        await eventually(lambda: _written(path, ids))
        again = await client.post("/v1/tasks", json=ECHO)
        assert again.status == 202


async def _written(path: str, ids: list[str]) -> bool:
    with sqlite3.connect(path) as db:
        marks = ",".join("?" * len(ids))
        rows: list[Any] = db.execute(
            f"SELECT id FROM {TABLE} WHERE id IN ({marks})", ids
        ).fetchall()
    return len(rows) == len(ids)
