"""``TaskStore``: task records on either engine, every write a read-merge-write under a lock.

Records change only through ``merge`` (events, the gateway's ``queued``
write) or through the two gateway-owned fields: an idempotency claim and a
cancellation request. Each write transaction signals the ids it changed, and
the signal reaches every waiter (see ``warren.service.store.db``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from warren.service.store.db import ChangeCallback, Database, Plan, Row, Update, Writes
from warren.service.store.merge import merge_all
from warren.service.store.model import Change, Status, TaskRecord
from warren.service.store.schema import migrate
from warren.service.store.sql import (
    INSERT_CLAIM,
    SELECT,
    TABLE,
    UPSERT,
    UPSERT_PROGRESS,
    ListQuery,
    decode,
    encode,
    encode_cursor,
    list_sql,
    reads_back_as_is,
    same_identity,
)

PRUNE_CHUNK = 5000


@dataclass(frozen=True)
class Page:
    items: list[TaskRecord]
    next_cursor: str | None


class TaskStore:
    """The one interface to task records; ``open_store(url)`` picks the engine."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.dialect = db.dialect
        # Records just committed, for one turn of the loop: the reads their change signal
        # woke (long-polls, streams) run in that turn and take them instead of reading.
        self._fresh: dict[str, TaskRecord] = {}

    async def open(self) -> None:
        await self.db.open()
        await migrate(self.db)

    async def close(self) -> None:
        await self.db.close()

    def subscribe(self, callback: ChangeCallback) -> None:
        self.db.subscribe(callback)

    async def apply(self, changes: Sequence[Change]) -> list[TaskRecord]:
        """Merge changes into their records in one transaction; returns the records altered."""
        if not changes:
            return []
        by_id: dict[str, list[Change]] = {}
        for change in changes:
            by_id.setdefault(change.task_id, []).append(change)
        written: list[TaskRecord] = []

        def plan(rows: list[Row]) -> Writes:
            current = self._decoded(rows)
            written[:] = merged(current, by_id)
            return self._writes(written, current)

        await self.db.update(self._update(sorted(by_id), plan, written, create=True))
        return written

    async def get(self, task_id: str, *, claims: bool = False) -> TaskRecord | None:
        """The record; with ``claims`` also an idempotency claim not yet published.

        A record committed in this turn of the loop is answered as written (see
        ``_hand_off``), without a read through the database's thread.
        """
        if not claims and (fresh := self._fresh.get(task_id)) is not None:
            return fresh
        if claims:
            rows = await self.db.read(f"{SELECT} WHERE id = ?", task_id)
        else:
            rows = await self.db.read(f"{SELECT} WHERE id = ? AND published = ?", task_id, True)
        return decode(rows[0], self.dialect) if rows else None

    async def list(self, query: ListQuery) -> Page:
        sql, args = list_sql(query, self.dialect)
        records = [r for row in await self.db.read(sql, *args) if (r := decode(row, self.dialect))]
        more = len(records) > query.limit
        items = records[: query.limit]
        return Page(items, encode_cursor(items[-1]) if more and items else None)

    async def counts(self) -> dict[Status, int]:
        rows = await self.db.read(
            f"SELECT status, COUNT(*) AS n FROM {TABLE} WHERE published = ? "
            "AND status IS NOT NULL GROUP BY status",
            True,
        )
        return {Status(row["status"]): int(row["n"]) for row in rows}

    async def claim(self, record: TaskRecord) -> TaskRecord | None:
        """Insert-first idempotency: store the unpublished ``record`` unless its
        (submitter, key) is taken; returns None when claimed, else the holder.

        A holder that vanished between the conflict and the read (released
        after a failed publish) is claimed anew.
        """
        assert record.idempotency_key is not None and not record.published
        while True:
            async with self.db.write() as tx:
                if await tx.fetch(INSERT_CLAIM, *encode(record, self.dialect)):
                    await tx.notify([record.id])
                    return None
                rows = await tx.fetch(
                    f"{SELECT} WHERE submitter = ? AND idempotency_key = ?",
                    record.submitter,
                    record.idempotency_key,
                )
            if rows and (holder := decode(rows[0], self.dialect)) is not None:
                return holder

    async def release(self, task_id: str, *, unless_newer_than: datetime | None = None) -> bool:
        """Drop an unpublished claim (its publish failed, or it went stale); True if dropped."""
        sql = f"DELETE FROM {TABLE} WHERE id = ? AND published = ?"
        args: list[object] = [task_id, False]
        if unless_newer_than is not None:
            sql += " AND updated_at < ?"
            args.append(self.dialect.encode_time(unless_newer_than))
        async with self.db.write() as tx:
            dropped = bool(await tx.fetch(sql + " RETURNING id", *args))
            if dropped:
                await tx.notify([task_id])
        return dropped

    async def request_cancel(self, task_id: str, at: datetime) -> TaskRecord | None:
        """Note that cancellation was asked for (consumers then record ``cancelled``)."""
        outcome: list[TaskRecord | None] = [None]
        written: list[TaskRecord] = []

        def plan(rows: list[Row]) -> Writes:
            record = self._decoded(rows).get(task_id)
            if record is None or not record.published:
                return Writes()
            outcome[0] = record
            if record.final or record.cancel_requested_at is not None:
                return Writes()
            outcome[0] = updated = replace(
                record,
                cancel_requested_at=at,
                updated_at=max(record.updated_at, at),
                version=record.version + 1,
            )
            written.append(updated)
            return self._writes(written, {task_id: record})

        await self.db.update(self._update([task_id], plan, written, create=False))
        return outcome[0]

    async def prune(self, before: datetime) -> int:
        """Delete records untouched since ``before``, in chunks that keep each lock short."""
        pruned = 0
        while True:
            async with self.db.write() as tx:
                rows = await tx.fetch(
                    f"DELETE FROM {TABLE} WHERE id IN (SELECT id FROM {TABLE} "
                    f"WHERE updated_at < ? LIMIT {PRUNE_CHUNK}) RETURNING id",
                    self.dialect.encode_time(before),
                )
            pruned += len(rows)
            if len(rows) < PRUNE_CHUNK:
                return pruned

    def _update(
        self, ids: Sequence[str], plan: Plan, written: Sequence[TaskRecord], *, create: bool
    ) -> Update:
        """The records of ``ids``, locked (in id order: batches never deadlock), to ``plan``,
        which leaves what it writes in ``written``; with ``create``, rows are made for new
        ids first (so that two replicas' first changes of one task cannot both insert it)."""
        clause, args = self.dialect.in_list("id", ids)
        select = f"{SELECT} WHERE {clause} ORDER BY id{self.dialect.for_update}"
        return Update(ids if create else (), select, args, plan, lambda: self._hand_off(written))

    def _hand_off(self, written: Sequence[TaskRecord]) -> None:
        """Keep the records just committed until the end of the next turn of the loop.

        Called right after the change signal (on SQLite only, where a signal is this
        process's own commit): the waiters it woke run in the next turn, before the records
        are dropped, and answer with exactly what a read would give, as every write to a
        record goes through this store, one at a time, and the next cannot have signalled
        yet. A record whose times are not all UTC is left out: it reads back in UTC.
        """
        fresh = {r.id: r for r in written if r.published and reads_back_as_is(r)}
        if fresh:
            self._fresh = fresh
            asyncio.get_running_loop().call_soon(fresh.clear)

    def _decoded(self, rows: Sequence[Row]) -> dict[str, TaskRecord]:
        return {r.id: r for row in rows if (r := decode(row, self.dialect)) is not None}

    def _writes(self, records: Sequence[TaskRecord], before: dict[str, TaskRecord]) -> Writes:
        """The upserts of ``records``: the cheaper ``UPSERT_PROGRESS`` for a record stored
        with the same identity, or new where the engine made no row for it yet; ``UPSERT``,
        every column, for the rest (rare on SQLite: then a transaction is one statement, and
        its thread hands the GIL back to the loop once)."""
        progress: list[Sequence[Any]] = []
        whole: list[Sequence[Any]] = []
        fresh_is_cheap = not self.dialect.placeholder_rows
        for record in records:
            stored = before.get(record.id)
            cheap = fresh_is_cheap if stored is None else same_identity(stored, record)
            (progress if cheap else whole).append(encode(record, self.dialect))
        statements = [(UPSERT_PROGRESS, progress), (UPSERT, whole)]
        return Writes(statements, [r.id for r in records])


def merged(current: dict[str, TaskRecord], by_id: dict[str, list[Change]]) -> list[TaskRecord]:
    """The records that ``by_id``'s changes alter, in id order: the body of ``apply``,
    plain and synchronous so that an engine may run it on its own thread."""
    written: list[TaskRecord] = []
    for task_id in sorted(by_id):
        before = current.get(task_id)
        after = merge_all(before, by_id[task_id])
        if after is not None and after is not before:
            written.append(after)
    return written
