"""A read that a commit's change signal woke takes the records just written (SQLite), and
answers exactly as a read of the stored row would: the long-poll's answer, byte for byte."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import timedelta, timezone
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import StartConsumer
from tests.store.support import Client, eventually, recorder_of, submit
from tests.store.test_store import life, new_id
from warren.service.http.task_store import WATCHERS
from warren.service.store import Change, TaskRecord, TaskStore
from warren.service.store.db import Row
from warren.service.store.watch import Watchers


class WokenRead:
    """A waiter like a long-poll's: woken by the change signal, it reads the record."""

    def __init__(self, store: TaskStore, task_id: str) -> None:
        self._woken = asyncio.Event()
        store.subscribe(self._changed)
        self._task_id = task_id
        self.reading = asyncio.create_task(self._read(store))

    def _changed(self, ids: Iterable[str] | None) -> None:
        if ids is None or self._task_id in ids:
            self._woken.set()

    async def _read(self, store: TaskStore) -> TaskRecord | None:
        await self._woken.wait()
        return await store.get(self._task_id)


def shown(record: TaskRecord | None) -> bytes:
    assert record is not None
    return orjson.dumps(record.to_json())


async def test_a_woken_read_takes_the_record_as_written_and_it_reads_the_same(
    store: TaskStore,
) -> None:
    task = new_id()
    woken = WokenRead(store, task)
    await asyncio.sleep(0)
    [written] = await store.apply(life(task))
    handed = await woken.reading
    stored = await store.get(task)  # a later turn: read from the database
    assert stored is not written
    if store.dialect.name == "sqlite":
        assert handed is written
    assert stored == handed and shown(stored) == shown(handed)


async def test_a_record_with_times_not_in_utc_is_read_not_handed(store: TaskStore) -> None:
    task = new_id()
    plus_two = timezone(timedelta(hours=2))
    changes: list[Change] = []
    for change in life(task):
        at = change.at.astimezone(plus_two)
        created = change.created_at.astimezone(plus_two) if change.created_at else None
        changes.append(change.model_copy(update={"at": at, "created_at": created}))
    woken = WokenRead(store, task)
    await asyncio.sleep(0)
    [written] = await store.apply(changes)
    handed = await woken.reading
    assert handed is not written and handed == written
    assert shown(handed) == shown(await store.get(task)) != shown(written)


async def test_a_long_poll_answers_as_a_plain_get_does(
    gateway: Client, start_consumer: StartConsumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The long-poll reads the database once, before it waits; on SQLite each wake-up takes
    the record its commit handed over. Its answer is the plain GET's, byte for byte."""
    store = recorder_of(gateway).store
    server = gateway.server
    assert isinstance(server, TestServer) and isinstance(server.app, web.Application)
    reads: list[tuple[Any, ...]] = []
    read = store.db.read

    async def counted(sql: str, *args: Any) -> list[Row]:
        reads.append(args)
        return await read(sql, *args)

    accepted = await submit(gateway, {"type": "diag.sleep", "payload": {"ms": 50}})
    await eventually(lambda: stored(store, accepted["id"]))  # its `queued`, written
    monkeypatch.setattr(store.db, "read", counted)
    poll = asyncio.create_task(gateway.get(f"/v1/tasks/{accepted['id']}", params={"wait": "30"}))
    await eventually(lambda: waiting(server.app[WATCHERS], reads))  # read once, now waiting
    await start_consumer("diag")
    polled = await poll
    polled_reads = sum(accepted["id"] in args for args in reads)
    plain = await gateway.get(f"/v1/tasks/{accepted['id']}")
    assert polled.status == plain.status == 200
    body = await polled.read()
    assert orjson.loads(body)["status"] == "succeeded"
    assert body == await plain.read()
    if store.dialect.name == "sqlite":
        assert polled_reads == 1


async def stored(store: TaskStore, task_id: str) -> bool:
    return await store.get(task_id) is not None


async def waiting(watchers: Watchers, reads: list[tuple[Any, ...]]) -> bool:
    return len(watchers) == 1 and len(reads) == 1
