"""The store on both engines, without the broker: round trips, queries, claims, competition."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from warren.service.store import Change, ListQuery, TaskStore, open_store
from warren.service.store.merge import merge, merge_all
from warren.service.store.model import Status
from warren.service.store.postgres import PostgresDatabase
from warren.service.store.schema import MIGRATIONS, migrate

T0 = datetime.now(UTC).replace(microsecond=123456) - timedelta(minutes=5)


def life(
    task_id: str, *, ms: int = 0, type_: str = "diag.echo", fail: bool = False
) -> list[Change]:
    """A task's queued → running → succeeded (or dead) changes."""

    def at(offset: int) -> datetime:
        return T0 + timedelta(milliseconds=ms + offset)

    common: dict[str, Any] = {
        "task_id": task_id,
        "type": type_,
        "queue": type_.split(".", maxsplit=1)[0],
        "max_attempts": 2,
        "trace_id": "e" * 32,
    }
    end: dict[str, Any] = (
        {"status": Status.DEAD, "reason": "permanent", "error_type": "Permanent", "error": "ü"}
        if fail
        else {"status": Status.SUCCEEDED, "result": {"n": [1, 2.5, "x"], "deep": {"ok": True}}}
    )
    return [
        Change(
            status=Status.QUEUED, attempt=1, at=at(0), created_at=at(0), submitter="s", **common
        ),
        Change(status=Status.RUNNING, attempt=1, at=at(1), worker="w", **common),
        Change(attempt=1, at=at(2), worker="w", **common, **end),
    ]


def new_id() -> str:
    return uuid.uuid4().hex


async def test_a_record_round_trips_exactly(store: TaskStore) -> None:
    task = new_id()
    [written] = await store.apply(life(task))
    assert await store.get(task) == written
    dead = new_id()
    await store.apply(life(dead, fail=True))
    record = await store.get(dead)
    assert record is not None and record.status is Status.DEAD and record.error == "ü"
    assert await store.get(new_id()) is None


async def test_applying_the_same_changes_again_writes_nothing(store: TaskStore) -> None:
    task = new_id()
    changes = life(task)
    await store.apply(changes)
    assert await store.apply(changes) == []
    assert await store.apply(list(reversed(changes))) == []
    record = await store.get(task)
    assert record is not None and record.version == 3


async def test_a_record_written_change_by_change_round_trips_exactly(store: TaskStore) -> None:
    """Each later change updates the stored record (the cheaper upsert of its progress)."""
    task = new_id()
    expected = None
    for change in life(task):
        await store.apply([change])
        expected = merge_all(expected, [change])
        assert await store.get(task) == expected
    listed = await store.list(ListQuery(statuses=(Status.SUCCEEDED,), limit=100))
    assert [r.id for r in listed.items] == [task]


async def test_a_record_whose_identity_moves_is_stored_and_listed_by_its_new_values(
    store: TaskStore,
) -> None:
    """A consumer's event first (no creation time from an older consumer, no submitter),
    the gateway's ``queued`` after it: the earlier creation time and the submitter are
    written, and the list's indexes find the record by them."""
    task = new_id()
    queued, running, _ = life(task, ms=1000)
    first = running.model_copy(update={"created_at": None, "submitter": None})
    [made] = await store.apply([first])
    assert made.created_at == running.at and made.submitter is None
    [moved] = await store.apply([queued])
    assert moved.created_at == queued.created_at and moved.submitter == "s"
    assert await store.get(task) == moved
    mine = await store.list(ListQuery(submitter="s", limit=100))
    assert task in [r.id for r in mine.items]
    before = await store.list(ListQuery(since=queued.at - timedelta(milliseconds=1), limit=100))
    assert task in [r.id for r in before.items]


async def test_list_is_newest_first_filtered_and_paged_without_gaps(store: TaskStore) -> None:
    ids = [new_id() for _ in range(25)]
    for i, task in enumerate(ids):
        await store.apply(
            life(task, ms=i * 10, fail=i % 5 == 0, type_="diag.echo" if i % 2 else "email.send")
        )
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.list(ListQuery(limit=7, cursor=cursor))
        seen += [r.id for r in page.items]
        if (cursor := page.next_cursor) is None:
            break
    assert seen == list(reversed(ids))
    dead = await store.list(ListQuery(statuses=(Status.DEAD,), limit=100))
    assert [r.id for r in dead.items] == [ids[i] for i in (20, 15, 10, 5, 0)]
    emails = await store.list(ListQuery(type="email.send", queue="email", limit=100))
    assert {r.id for r in emails.items} == {ids[i] for i in range(0, 25, 2)}
    recent = await store.list(ListQuery(since=T0 + timedelta(milliseconds=200), limit=100))
    assert [r.id for r in recent.items] == list(reversed(ids[20:]))
    counts = await store.counts()
    assert counts == {Status.SUCCEEDED: 20, Status.DEAD: 5}


async def test_an_idempotency_key_is_claimed_once_and_released_for_a_retry(
    store: TaskStore,
) -> None:
    def claim(task: str, submitter: str = "alice") -> Any:
        record = merge(None, life(task)[0])
        return replace(
            record, published=False, submitter=submitter, idempotency_key="k1", request_hash="h"
        )

    first = new_id()
    assert await store.claim(claim(first)) is None
    holder = await store.claim(claim(new_id()))
    assert holder is not None and holder.id == first and not holder.published
    assert await store.get(first) is None  # an unpublished claim is invisible
    assert await store.claim(claim(new_id(), submitter="bob")) is None  # keys are per client
    assert await store.release(first)
    again = new_id()
    assert await store.claim(claim(again)) is None
    await store.apply(life(again)[:1])  # the gateway's queued write publishes it
    holder = await store.claim(claim(new_id()))
    assert holder is not None and holder.id == again and holder.published
    assert not await store.release(again)  # a published task is never released


async def test_a_cancel_request_is_noted_once_and_never_on_a_finished_task(
    store: TaskStore,
) -> None:
    queued, done = new_id(), new_id()
    await store.apply(life(queued)[:1] + life(done))
    noted = await store.request_cancel(queued, T0 + timedelta(seconds=1))
    assert noted is not None and noted.cancel_requested_at == T0 + timedelta(seconds=1)
    assert noted.version == 2 and noted.status is Status.QUEUED
    assert await store.request_cancel(queued, T0 + timedelta(seconds=2)) == noted
    finished = await store.request_cancel(done, T0)
    assert finished is not None and finished.cancel_requested_at is None
    assert await store.request_cancel(new_id(), T0) is None
    # The recorder's later merges keep the gateway's note.
    after = await store.apply([life(queued)[1]])
    assert after[0].cancel_requested_at == noted.cancel_requested_at


async def test_old_records_are_pruned(store: TaskStore) -> None:
    old, new = new_id(), new_id()
    await store.apply(life(old, ms=-3_600_000) + life(new))
    assert await store.prune(T0 - timedelta(minutes=1)) == 1
    assert await store.get(old) is None and await store.get(new) is not None


async def test_records_survive_reopening_and_migrating_twice_is_a_no_op(
    store: TaskStore, store_url: str
) -> None:
    task = new_id()
    [written] = await store.apply(life(task))
    again = await open_store(store_url)
    try:
        assert await again.get(task) == written
        assert await migrate(again.db) == len(MIGRATIONS)
    finally:
        await again.close()


async def test_competing_replicas_converge_on_the_same_records(store_url: str) -> None:
    """Two stores (two gateways) apply one stream of events split at random between them."""
    replicas = [await open_store(store_url) for _ in range(2)]
    try:
        tasks = [new_id() for _ in range(40)]
        events = [c for t in tasks for c in life(t)]
        events += random.Random(3).choices(events, k=40)  # redeliveries
        random.Random(5).shuffle(events)
        batches = [events[i : i + 7] for i in range(0, len(events), 7)]
        await asyncio.gather(*(_apply_all(replicas[i % 2], batches[i::2]) for i in range(2)))
        for task in tasks:
            expected = merge_all(None, life(task))
            stored = await replicas[0].get(task)
            assert stored is not None and expected is not None
            assert (stored.status, stored.attempts, stored.submitter) == (
                expected.status,
                expected.attempts,
                expected.submitter,
            )
    finally:
        for replica in replicas:
            await replica.close()


async def _apply_all(store: TaskStore, batches: Iterable[list[Change]]) -> None:
    for batch in batches:
        await store.apply(batch)


async def test_every_replica_hears_of_a_change_another_one_wrote(
    store: TaskStore, store_url: str
) -> None:
    heard: list[str] = []
    arrived = asyncio.Event()

    def on_change(ids: Iterable[str] | None) -> None:
        heard.extend(ids or ["*"])
        arrived.set()

    store.subscribe(on_change)
    task = new_id()
    if store.dialect.name == "sqlite":  # one process's file: the writer itself signals
        await store.apply(life(task))
    else:
        other = await open_store(store_url)
        try:
            await other.apply(life(task))
        finally:
            await other.close()
    async with asyncio.timeout(5):
        await arrived.wait()
    assert heard == [task]


@pytest.mark.parametrize("url", ["mysql://x", "sqlite:///", "sqlite:///:memory:"])
async def test_unsupported_store_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        await open_store(url)


# PostgreSQL only: SQLite signals in-process, there is no LISTEN connection to lose.
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
async def test_a_replica_that_lost_its_listen_connection_wakes_everyone_and_hears_again(
    store: TaskStore, store_url: str
) -> None:
    assert isinstance(store.db, PostgresDatabase)
    heard: list[str] = []
    arrived = asyncio.Event()

    def on_change(ids: Iterable[str] | None) -> None:
        heard.extend(ids or ["*"])
        arrived.set()

    store.subscribe(on_change)
    admin = await asyncpg.connect(store_url)
    try:
        killed = await admin.fetchval(  # only this store's listener: its channel names its schema
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE query = $1 AND pid <> pg_backend_pid()",
            f'LISTEN "{store.db.channel}"',
        )
        assert killed == 1
        async with asyncio.timeout(10):
            await arrived.wait()
        assert heard == ["*"]  # reconnected: waiters re-read whatever they wait for
        arrived.clear()
        task = new_id()
        await store.apply(life(task))
        async with asyncio.timeout(5):
            await arrived.wait()
        assert heard[-1] == task
    finally:
        await admin.close()
