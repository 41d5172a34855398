"""``TaskStore``: task records on either engine, every write a read-merge-write under a lock.

Records change only through ``merge`` (events, the gateway's ``queued``
write) or through the two gateway-owned fields: an idempotency claim and a
cancellation request. Each write transaction signals the ids it changed, and
the signal reaches every waiter (see ``warren.service.store.db``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from warren.service.store.db import ChangeCallback, Database, Transaction
from warren.service.store.merge import merge_all
from warren.service.store.model import Change, Status, TaskRecord
from warren.service.store.schema import migrate
from warren.service.store.sql import (
    INSERT_CLAIM,
    SELECT,
    TABLE,
    UPSERT,
    ListQuery,
    decode,
    encode,
    encode_cursor,
    list_sql,
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
        ids = sorted(by_id)
        async with self.db.write() as tx:
            await tx.ensure_rows(ids)
            current = await self._locked(tx, ids)
            written: list[TaskRecord] = []
            for task_id in ids:
                before = current.get(task_id)
                after = merge_all(before, by_id[task_id])
                if after is not None and after is not before:
                    written.append(after)
            await self._write(tx, written)
        return written

    async def get(self, task_id: str, *, claims: bool = False) -> TaskRecord | None:
        """The record; with ``claims`` also an idempotency claim not yet published."""
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
        async with self.db.write() as tx:
            record = (await self._locked(tx, [task_id])).get(task_id)
            if record is None or not record.published:
                return None
            if record.final or record.cancel_requested_at is not None:
                return record
            updated = replace(
                record,
                cancel_requested_at=at,
                updated_at=max(record.updated_at, at),
                version=record.version + 1,
            )
            await self._write(tx, [updated])
        return updated

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

    async def _locked(self, tx: Transaction, ids: Sequence[str]) -> dict[str, TaskRecord]:
        clause, args = self.dialect.in_list("id", ids)
        rows = await tx.fetch(
            f"{SELECT} WHERE {clause} ORDER BY id{self.dialect.for_update}", *args
        )
        return {r.id: r for row in rows if (r := decode(row, self.dialect)) is not None}

    async def _write(self, tx: Transaction, records: Sequence[TaskRecord]) -> None:
        if records:
            await tx.executemany(UPSERT, [encode(r, self.dialect) for r in records])
            await tx.notify([r.id for r in records])
