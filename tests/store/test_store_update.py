"""``Database.update``, the read-merge-write of ``TaskStore.apply``, on both engines.

On SQLite the whole transaction is one call on the writer's thread: these tests check
that it is still one transaction (all or nothing), that the engine's errors still map to
``StoreRejected`` / ``StoreUnavailable``, that the connection is usable after a failure
(no transaction left open), and that only a commit signals its changes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from typing import Any

import pytest

from tests.store.test_store import life, new_id
from warren.service.store import TaskStore
from warren.service.store.db import Row, StoreRejected, StoreUnavailable, Update, Writes
from warren.service.store.sql import SELECT, TABLE


class Signals:
    """The change signals a store sent, in order."""

    def __init__(self, store: TaskStore) -> None:
        self.ids: list[str] = []
        self.arrived = asyncio.Event()
        store.subscribe(self)

    def __call__(self, ids: Iterable[str] | None) -> None:
        self.ids.extend(ids or ())
        self.arrived.set()


def writing(sql: str, rows: list[tuple[Any, ...]], changed: list[str]) -> Update:
    """An update that reads nothing of note and writes ``rows`` with ``sql``."""

    def plan(_rows: list[Row]) -> Writes:
        return Writes([(sql, list(rows))], changed)

    return Update((), f"{SELECT} WHERE id = ?", ["none"], plan)


async def ids_stored(store: TaskStore, ids: list[str]) -> list[str]:
    clause, args = store.dialect.in_list("id", ids)
    return [
        row["id"] for row in await store.db.read(f"SELECT id FROM {TABLE} WHERE {clause}", *args)
    ]


async def test_a_refused_row_rolls_back_the_rows_before_it(store: TaskStore) -> None:
    signals = Signals(store)
    first, second = new_id(), new_id()
    insert = f"INSERT INTO {TABLE} (id) VALUES (?)"
    rows = [(first,), (second,), (first,)]  # the third breaks the primary key
    with pytest.raises(StoreRejected):
        await store.db.update(writing(insert, rows, [first, second]))
    assert await ids_stored(store, [first, second]) == []
    assert signals.ids == []
    [written] = await store.apply(life(task := new_id()))  # nothing left open
    assert await store.get(task) == written and signals.ids == [task]


async def test_a_failing_database_is_unavailable_and_rolls_back(store: TaskStore) -> None:
    signals = Signals(store)
    task = new_id()

    def plan(_rows: list[Row]) -> Writes:
        return Writes([(f"INSERT INTO {TABLE} (id) VALUES (?)", [(task,)])], [task])

    with pytest.raises(StoreUnavailable):  # its read fails
        await store.db.update(Update((), f"SELECT * FROM {TABLE}_missing", [], plan))
    with pytest.raises(StoreUnavailable):  # its write fails
        await store.db.update(writing("INSERT INTO warren_missing (id) VALUES (?)", [(task,)], []))
    assert await ids_stored(store, [task]) == []
    assert signals.ids == []
    assert await store.apply(life(task)) != []


async def test_a_plan_that_raises_rolls_back_and_its_error_is_not_mapped(
    store: TaskStore,
) -> None:
    task = new_id()
    [before] = await store.apply(life(task)[:1])

    def plan(rows: list[Row]) -> Writes:
        raise ZeroDivisionError(len(rows))

    select = f"{SELECT} WHERE id = ?{store.dialect.for_update}"
    with pytest.raises(ZeroDivisionError):
        await store.db.update(Update([task], select, [task], plan))
    assert await store.get(task) == before
    assert len(await store.apply(life(task))) == 1


async def test_a_cancelled_apply_still_commits_and_signals(store: TaskStore) -> None:
    """On SQLite the call runs on to its commit on the thread; the waiters still hear of it."""
    if store.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's transaction is the caller's own: cancelled, it rolls back")
    signals = Signals(store)
    task = new_id()
    applying = asyncio.create_task(store.apply(life(task)))
    await asyncio.sleep(0)  # into the call on the writer's thread
    applying.cancel()
    with pytest.raises(asyncio.CancelledError):
        await applying
    await signals.arrived.wait()
    assert signals.ids == [task]
    record = await store.get(task)
    assert record is not None and record.final


async def test_a_batch_larger_than_one_statement_takes_is_written_whole(store: TaskStore) -> None:
    """SQLite writes a batch as statements of many rows each, up to its limit of ``?``s
    (32766: 1424 records); 1500 records take two, and every one is written and signalled."""
    signals = Signals(store)
    ids = [new_id() for _ in range(1500)]
    created = await store.apply([life(task)[0] for task in ids])
    finished = await store.apply([life(task)[2] for task in ids])
    assert [r.id for r in created] == [r.id for r in finished] == sorted(ids)
    assert sorted(await ids_stored(store, ids)) == sorted(ids)
    assert signals.ids == sorted(ids) * 2
    for task, record in zip(sorted(ids), finished, strict=True):
        assert await store.get(task) == record and record.final


async def test_a_write_cancelled_while_it_begins_leaves_the_store_writable(
    store: TaskStore,
) -> None:
    """Cancelled while its ``BEGIN`` waits for the thread, a writer leaves no transaction
    open: the queued ``BEGIN`` is dropped (or, caught running, rolled back by the next
    write's ``BEGIN``), and the next write goes through."""
    if store.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's transaction is the caller's own connection's")
    gate = threading.Event()

    def held(_rows: list[Row]) -> Writes:
        gate.wait()  # on the writer's thread: what is handed to it next waits
        return Writes()

    holding = asyncio.create_task(store.db.update(Update((), f"{SELECT} LIMIT 0", [], held)))

    async def write_nothing() -> None:
        async with store.db.write():
            pass

    await asyncio.sleep(0)
    holding.cancel()  # it lets go of the lock; its call still holds the thread
    writing = asyncio.create_task(write_nothing())
    await asyncio.sleep(0)  # holding the lock, its BEGIN queued behind the held call
    writing.cancel()
    for task in (holding, writing):
        with pytest.raises(asyncio.CancelledError):
            await task
    gate.set()
    [written] = await store.apply(life(task_id := new_id()))
    assert await store.get(task_id) == written
    assert await ids_stored(store, [task_id]) == [task_id]
