"""The SQL both stores share, and the few places SQLite and PostgreSQL differ (``Dialect``).

Statements are written once with ``?`` placeholders; the PostgreSQL driver
rewrites them to ``$n``. Both engines have ``INSERT … ON CONFLICT``,
``RETURNING`` and row-value comparison, so only types, lists and row locks
differ.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from warren.service.store.model import AttemptRecord, Status, TaskRecord

TABLE = "warren_tasks"
COLUMNS = (
    "id",
    "type",
    "queue",
    "status",
    "attempt",
    "max_attempts",
    "created_at",
    "updated_at",
    "version",
    "started_at",
    "finished_at",
    "result",
    "error_type",
    "error",
    "reason",
    "trace_id",
    "submitter",
    "idempotency_key",
    "request_hash",
    "published",
    "cancel_requested_at",
    "attempts",
    "due_at",
)
TIME_COLUMNS = frozenset(
    {"created_at", "updated_at", "started_at", "finished_at", "cancel_requested_at", "due_at"}
)
JSON_COLUMNS = frozenset({"result", "attempts"})
ZERO = timedelta(0)
_COLS = ", ".join(COLUMNS)

IDENTITY_COLUMNS = frozenset(
    {"id", "type", "queue", "created_at", "submitter", "idempotency_key", "request_hash"}
)
"""What a task is: set when its record is made, changed after only by a first or an earlier
value (``merge``). Every index of the list filters holds one of them."""
UPSERT = (
    f"INSERT INTO {TABLE} ({_COLS}) VALUES ({', '.join('?' for _ in COLUMNS)}) "
    f"ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "id")
)
UPSERT_PROGRESS = (
    f"INSERT INTO {TABLE} ({_COLS}) VALUES ({', '.join('?' for _ in COLUMNS)}) "
    f"ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c not in IDENTITY_COLUMNS)
)
"""``UPSERT`` for a record whose identity is as stored, or a new one where no row exists yet:
its update leaves those columns out, so SQLite, which updates every index that holds a column
named in ``SET``, maintains two indexes (status, updated) instead of seven: 33 against 88 µs
of CPU per updated row, measured on the schema's table and indexes. (PostgreSQL compares
values and skips unchanged indexes itself.)"""
INSERT_CLAIM = (
    f"INSERT INTO {TABLE} ({_COLS}) VALUES ({', '.join('?' for _ in COLUMNS)}) "
    "ON CONFLICT DO NOTHING RETURNING id"
)
SELECT = f"SELECT {_COLS} FROM {TABLE}"


class Dialect:
    """What differs between engines: column types, value encoding, lists, row locks."""

    name = "generic"
    time_type = "TEXT"
    json_type = "TEXT"
    bool_type = "INTEGER"
    true_literal = "1"
    for_update = ""
    # Whether a new record's row exists before its first upsert (the engine's
    # ``ensure_rows`` inserts an empty one to lock it): its upsert must then set every column.
    placeholder_rows = False

    def encode_time(self, value: datetime | None) -> Any:
        return value

    def decode_time(self, value: Any) -> datetime | None:
        return value  # type: ignore[no-any-return]

    def encode_json(self, value: Any) -> Any:
        return value

    def decode_json(self, value: Any) -> Any:
        return value

    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        raise NotImplementedError


class SqliteDialect(Dialect):
    """Times as fixed-width ISO 8601 UTC text (sorts as time), JSON as text."""

    name = "sqlite"

    def encode_time(self, value: datetime | None) -> Any:
        if value is None:
            return None
        return value.astimezone(UTC).isoformat(timespec="microseconds")

    def decode_time(self, value: Any) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    def encode_json(self, value: Any) -> Any:
        return None if value is None else orjson.dumps(value, default=str).decode()

    def decode_json(self, value: Any) -> Any:
        return None if value is None else orjson.loads(value)

    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} IN ({', '.join('?' for _ in values)})", list(values)


class PostgresDialect(Dialect):
    """``timestamptz`` and ``jsonb`` (the driver's codec does the JSON), arrays for lists."""

    name = "postgresql"
    time_type = "TIMESTAMPTZ"
    json_type = "JSONB"
    bool_type = "BOOLEAN"
    true_literal = "TRUE"
    for_update = " FOR UPDATE"
    placeholder_rows = True

    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(?)", [list(values)]


def encode(record: TaskRecord, dialect: Dialect) -> tuple[Any, ...]:
    """A record as the row values of ``COLUMNS``."""
    return (
        record.id,
        record.type,
        record.queue,
        record.status.value,
        record.attempt,
        record.max_attempts,
        dialect.encode_time(record.created_at),
        dialect.encode_time(record.updated_at),
        record.version,
        dialect.encode_time(record.started_at),
        dialect.encode_time(record.finished_at),
        dialect.encode_json(record.result),
        record.error_type,
        record.error,
        record.reason,
        record.trace_id,
        record.submitter,
        record.idempotency_key,
        record.request_hash,
        record.published,
        dialect.encode_time(record.cancel_requested_at),
        dialect.encode_json([a.to_json() for a in record.attempts]),
        dialect.encode_time(record.due_at),
    )


def same_identity(a: TaskRecord, b: TaskRecord) -> bool:
    """Whether ``a`` and ``b`` agree on every column of ``IDENTITY_COLUMNS`` (named as the
    record's fields), so that ``b`` may be written with ``UPSERT_PROGRESS`` over ``a``."""
    return all(getattr(a, column) == getattr(b, column) for column in IDENTITY_COLUMNS)


def reads_back_as_is(record: TaskRecord) -> bool:
    """Whether ``decode(encode(record))`` shows exactly as ``record`` does: its times are
    stored in UTC, so one with another offset reads back as the same instant, written
    differently. (JSON values round-trip: they came from JSON.)"""
    times = (
        record.created_at,
        record.updated_at,
        record.started_at,
        record.finished_at,
        record.cancel_requested_at,
        record.due_at,
    )
    return all(t is None or t.utcoffset() == ZERO for t in times)


def decode(row: Mapping[str, Any], dialect: Dialect) -> TaskRecord | None:
    """A row as a record; None for a row that holds no task yet (a lock placeholder)."""
    if row["status"] is None:
        return None
    times = {c: dialect.decode_time(row[c]) for c in TIME_COLUMNS}
    created, updated = times.pop("created_at"), times.pop("updated_at")
    assert created is not None and updated is not None
    return TaskRecord(
        id=row["id"],
        type=row["type"],
        queue=row["queue"],
        status=Status(row["status"]),
        attempt=row["attempt"],
        max_attempts=row["max_attempts"],
        created_at=created,
        updated_at=updated,
        version=row["version"],
        result=dialect.decode_json(row["result"]),
        error_type=row["error_type"],
        error=row["error"],
        reason=row["reason"],
        trace_id=row["trace_id"],
        submitter=row["submitter"],
        idempotency_key=row["idempotency_key"],
        request_hash=row["request_hash"],
        published=bool(row["published"]),
        attempts=tuple(
            AttemptRecord.from_json(a) for a in dialect.decode_json(row["attempts"]) or ()
        ),
        **times,
    )


@dataclass(frozen=True)
class ListQuery:
    """``GET /v1/tasks`` filters: newest first, continuing after ``cursor``."""

    statuses: tuple[Status, ...] = ()
    type: str | None = None
    queue: str | None = None
    since: datetime | None = None
    limit: int = 50
    cursor: str | None = None
    submitter: str | None = None  # one client's tasks only


def list_sql(query: ListQuery, dialect: Dialect) -> tuple[str, list[Any]]:
    """The statement of one page; it asks for one row more to know whether a next page exists."""
    where: list[str] = ["published = ?"]
    args: list[Any] = [True]
    if query.statuses:
        clause, values = dialect.in_list("status", [s.value for s in query.statuses])
        where.append(clause)
        args += values
    filters = (("type", query.type), ("queue", query.queue), ("submitter", query.submitter))
    for column, value in filters:
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if query.since is not None:
        where.append("created_at >= ?")
        args.append(dialect.encode_time(query.since))
    if query.cursor is not None:
        created, task_id = decode_cursor(query.cursor)
        where.append("(created_at, id) < (?, ?)")
        args += [dialect.encode_time(created), task_id]
    sql = f"{SELECT} WHERE {' AND '.join(where)} ORDER BY created_at DESC, id DESC LIMIT ?"
    return sql, [*args, query.limit + 1]


def encode_cursor(record: TaskRecord) -> str:
    return encode_position(record.created_at, record.id)


def encode_position(when: datetime, key: str) -> str:
    """A page's end as an opaque cursor: its (time, id), the order every list pages in."""
    raw = orjson.dumps([when.isoformat(), key])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor stands for; ``ValueError`` for anything not made by us."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, task_id = orjson.loads(raw)
        when = datetime.fromisoformat(created)
    except (binascii.Error, orjson.JSONDecodeError, TypeError, ValueError) as exc:
        raise ValueError("not a cursor of this API") from exc
    if when.tzinfo is None or not isinstance(task_id, str):
        raise ValueError("not a cursor of this API")
    return when, task_id
