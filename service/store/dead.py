"""Dead letters kept whole in the task store, so they are browsed without being consumed.

The gateway's keeper (``warren.service.dead_keeper``) moves each dead letter
from its broker queue into ``warren_dead_letters`` (committed, then acked): a
read is then an indexed SQL query that never touches, reorders or
redelivers a message, and the management plugin is not needed. A replay or a
discard first claims its rows (so two concurrent replays never publish one
twice), then deletes exactly the version it claimed (a task that died again
meanwhile keeps its new dead letter).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from warren.service.store.db import Database
from warren.service.store.sql import Dialect, decode_cursor, encode_position

DEAD_TABLE = "warren_dead_letters"
DEAD_COLUMNS = (
    "id",
    "queue",
    "type",
    "reason",
    "error_type",
    "error",
    "attempts",
    "dead_at",
    "size",
    "submitter",
    "body",
    "headers",
    "properties",
)
_COLS = ", ".join(DEAD_COLUMNS)
_SUMMARY = "id, queue, type, reason, error_type, error, attempts, dead_at, size, submitter"
# A newer death of the same task replaces the older one; a redelivered copy changes nothing.
_UPSERT = (
    f"INSERT INTO {DEAD_TABLE} ({_COLS}) VALUES ({', '.join('?' for _ in DEAD_COLUMNS)}) "
    "ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in DEAD_COLUMNS if c != "id")
    + f", claimed_at = NULL WHERE excluded.dead_at > {DEAD_TABLE}.dead_at"
)
CLAIM_SECONDS = 60.0  # a claim older than this was left by a crashed replay: take it over


def dead_letter_schema(d: Dialect) -> list[str]:
    """Migration 2: the dead letters and the indexes of their filters (newest first)."""
    return [
        f"""CREATE TABLE {DEAD_TABLE} (
            id TEXT PRIMARY KEY,
            queue TEXT NOT NULL,
            type TEXT,
            reason TEXT,
            error_type TEXT,
            error TEXT,
            attempts INTEGER,
            dead_at {d.time_type} NOT NULL,
            size INTEGER NOT NULL,
            submitter TEXT,
            body TEXT,
            headers {d.json_type},
            properties {d.json_type},
            claimed_at {d.time_type}
        )""",
        f"CREATE INDEX {DEAD_TABLE}_dead_at ON {DEAD_TABLE} (dead_at DESC, id DESC)",
        f"CREATE INDEX {DEAD_TABLE}_queue ON {DEAD_TABLE} (queue, dead_at DESC, id DESC)",
        f"CREATE INDEX {DEAD_TABLE}_type ON {DEAD_TABLE} (type, dead_at DESC, id DESC)",
        f"CREATE INDEX {DEAD_TABLE}_reason ON {DEAD_TABLE} (reason, dead_at DESC, id DESC)",
    ]


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter: why and when it died, and (``body``) the delivery as it came."""

    id: str
    queue: str
    type: str | None
    reason: str | None
    error_type: str | None
    error: str | None
    attempts: int | None
    dead_at: datetime
    size: int
    submitter: str | None
    body: bytes | None = None  # None: over the size bound, or not read (a list)
    headers: dict[str, Any] | None = None
    properties: dict[str, Any] | None = None

    def to_json(self, *, payload: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "queue": self.queue,
            "type": self.type,
            "reason": self.reason,
            "error_type": self.error_type,
            "error": self.error,
            "attempts": self.attempts,
            "dead_at": self.dead_at.isoformat(),
            "payload_size": self.size,
            "submitter": self.submitter,
        }
        if payload:
            body["payload"] = _payload(self.body)
            body["payload_kept"] = self.body is not None
            body["headers"] = self.headers
        return body


def _payload(body: bytes | None) -> Any:
    """The payload as JSON when it is JSON, else as text (what a person reads)."""
    if body is None:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace")


@dataclass(frozen=True)
class DeadQuery:
    """Filters of ``GET /v1/dead-letters``; newest first, after ``cursor``."""

    queue: str | None = None
    type: str | None = None
    reason: str | None = None
    since: datetime | None = None
    submitter: str | None = None
    limit: int = 50
    cursor: tuple[datetime, str] | None = None


def encode_dead_cursor(letter: DeadLetter) -> str:
    return encode_position(letter.dead_at, letter.id)


decode_dead_cursor = decode_cursor  # the same (time, id) position as the task list's


class DeadLetterStore:
    """Dead letters on the task store's database (same engine, same transactions)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.dialect = db.dialect

    async def keep(self, letters: Sequence[DeadLetter]) -> None:
        """Store letters (one transaction); a letter already kept is not duplicated."""
        if letters:
            async with self.db.write() as tx:
                await tx.executemany(_UPSERT, [self._encode(x) for x in letters])

    async def page(self, query: DeadQuery) -> tuple[list[DeadLetter], str | None]:
        where, args = self._where(query)
        if query.cursor is not None:
            where.append("(dead_at, id) < (?, ?)")
            args += [self.dialect.encode_time(query.cursor[0]), query.cursor[1]]
        rows = await self.db.read(
            f"SELECT {_SUMMARY} FROM {DEAD_TABLE} WHERE {' AND '.join(where)} "
            "ORDER BY dead_at DESC, id DESC LIMIT ?",
            *args,
            query.limit + 1,
        )
        letters = [self._decode(r) for r in rows]
        more = len(letters) > query.limit
        items = letters[: query.limit]
        return items, encode_dead_cursor(items[-1]) if more and items else None

    async def get(self, letter_id: str) -> DeadLetter | None:
        rows = await self.db.read(f"SELECT {_COLS} FROM {DEAD_TABLE} WHERE id = ?", letter_id)
        return self._decode(rows[0]) if rows else None

    async def counts(self) -> dict[str, int]:
        """Dead letters kept, by queue."""
        rows = await self.db.read(f"SELECT queue, COUNT(*) AS n FROM {DEAD_TABLE} GROUP BY queue")
        return {row["queue"]: int(row["n"]) for row in rows}

    async def select_ids(self, query: DeadQuery, limit: int) -> list[str]:
        """Ids matching a filter, oldest first (a replay keeps the order they died in)."""
        where, args = self._where(query)
        rows = await self.db.read(
            f"SELECT id FROM {DEAD_TABLE} WHERE {' AND '.join(where)} ORDER BY dead_at, id LIMIT ?",
            *args,
            limit,
        )
        return [row["id"] for row in rows]

    async def claim(self, ids: Sequence[str], now: datetime, stale: datetime) -> list[DeadLetter]:
        """Take these letters for a replay or discard; those another one holds are skipped."""
        if not ids:
            return []
        clause, args = self.dialect.in_list("id", ids)
        async with self.db.write() as tx:
            rows = await tx.fetch(
                f"UPDATE {DEAD_TABLE} SET claimed_at = ? WHERE {clause} AND "
                f"(claimed_at IS NULL OR claimed_at < ?) RETURNING {_COLS}",
                self.dialect.encode_time(now),
                *args,
                self.dialect.encode_time(stale),
            )
        return sorted((self._decode(r) for r in rows), key=lambda x: (x.dead_at, x.id))

    async def release(self, letter: DeadLetter) -> None:
        """Give a claimed letter back (its publish failed): the next replay takes it."""
        async with self.db.write() as tx:
            await tx.execute(
                f"UPDATE {DEAD_TABLE} SET claimed_at = NULL WHERE id = ? AND dead_at = ?",
                letter.id,
                self.dialect.encode_time(letter.dead_at),
            )

    async def remove(self, letters: Sequence[DeadLetter]) -> int:
        """Delete exactly these versions (a newer death of the same task stays)."""
        removed = 0
        async with self.db.write() as tx:
            for letter in letters:
                rows = await tx.fetch(
                    f"DELETE FROM {DEAD_TABLE} WHERE id = ? AND dead_at = ? RETURNING id",
                    letter.id,
                    self.dialect.encode_time(letter.dead_at),
                )
                removed += len(rows)
        return removed

    async def prune(self, before: datetime) -> int:
        """Drop dead letters older than the retention."""
        async with self.db.write() as tx:
            rows = await tx.fetch(
                f"DELETE FROM {DEAD_TABLE} WHERE dead_at < ? RETURNING id",
                self.dialect.encode_time(before),
            )
        return len(rows)

    def _where(self, query: DeadQuery) -> tuple[list[str], list[Any]]:
        where, args = ["1 = 1"], []
        filters = (
            ("queue", query.queue),
            ("type", query.type),
            ("reason", query.reason),
            ("submitter", query.submitter),
        )
        for column, value in filters:
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if query.since is not None:
            where.append("dead_at >= ?")
            args.append(self.dialect.encode_time(query.since))
        return where, args

    def _encode(self, x: DeadLetter) -> tuple[Any, ...]:
        d = self.dialect
        body = None if x.body is None else base64.b64encode(x.body).decode()
        return (
            x.id,
            x.queue,
            x.type,
            x.reason,
            x.error_type,
            x.error,
            x.attempts,
            d.encode_time(x.dead_at),
            x.size,
            x.submitter,
            body,
            d.encode_json(x.headers),
            d.encode_json(x.properties),
        )

    def _decode(self, row: dict[str, Any]) -> DeadLetter:
        d = self.dialect
        dead_at = d.decode_time(row["dead_at"])
        assert dead_at is not None
        body = row.get("body")
        return DeadLetter(
            id=row["id"],
            queue=row["queue"],
            type=row["type"],
            reason=row["reason"],
            error_type=row["error_type"],
            error=row["error"],
            attempts=row["attempts"],
            dead_at=dead_at,
            size=int(row["size"]),
            submitter=row["submitter"],
            body=None if body is None else base64.b64decode(body),
            headers=d.decode_json(row.get("headers")),
            properties=d.decode_json(row.get("properties")),
        )
