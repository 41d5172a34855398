"""The embedded store: one SQLite file, for one gateway process (the default).

Two connections, each on its own thread (``sqlite_thread``): a writer, whose
transactions are ``BEGIN IMMEDIATE`` and taken one at a time, and a reader,
which WAL mode lets read the last commit while a batch is being written.
``synchronous=NORMAL`` with WAL survives a crash of the process; a power
loss may lose the last commits, never corrupt the file.

The recorder's read-merge-write (``Database.update``) runs as one function on
the writer's thread, from ``BEGIN`` to ``COMMIT``: the loop is woken once per
transaction, not once per statement. Other writes (claims, pruning, the
schema) are rare and go statement by statement.

Change signals are plain calls after the commit: a second gateway process on
the same file would not hear them, which is why several replicas need
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import functools
import re
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from warren.service.store.db import Database, Row, StoreRejected, StoreUnavailable, Update, Writes
from warren.service.store.sql import SqliteDialect
from warren.service.store.sqlite_thread import SqliteThread

BUSY_TIMEOUT_MS = 5000
PRAGMAS = (f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}", "PRAGMA synchronous = NORMAL")
WAL = "PRAGMA journal_mode = WAL"  # kept by the file: set once, by the writer


class _Transaction:
    def __init__(self, connection: SqliteThread) -> None:
        self._connection = connection
        self.changed: list[str] = []

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return await self._connection.call(_fetch, sql, args)

    async def execute(self, sql: str, *args: Any) -> None:
        await self._connection.call(_fetch, sql, args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._connection.call(_executemany, sql, rows)

    async def ensure_rows(self, ids: Sequence[str]) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already holds the only write lock."""

    async def notify(self, ids: Sequence[str]) -> None:
        self.changed.extend(ids)


class SqliteDatabase(Database):
    dialect = SqliteDialect()

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._writer: SqliteThread | None = None
        self._reader: SqliteThread | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._writer = await SqliteThread.open(self.path, (*PRAGMAS, WAL))
            self._reader = await SqliteThread.open(self.path, PRAGMAS)
        except BaseException:
            await self.close()  # its threads would otherwise outlive the store
            raise

    async def close(self) -> None:
        for connection in (self._reader, self._writer):
            if connection is not None:
                await connection.close()
        self._reader = self._writer = None

    @asynccontextmanager
    async def write(self) -> AsyncIterator[_Transaction]:
        async with self._lock:
            writer = self._require(self._writer)
            tx = _Transaction(writer)
            with _mapped_errors():
                await writer.call(_begin)
                try:
                    yield tx
                except BaseException:
                    await writer.call(_fetch, "ROLLBACK", ())
                    raise
                await writer.call(_fetch, "COMMIT", ())
        if tx.changed:
            self._signal(tx.changed)

    async def update(self, update: Update) -> None:
        """The whole transaction in one call on the writer's thread.

        Shielded: a caller cancelled meanwhile leaves the call to finish (the next write
        queues behind it on the same thread), and its commit still signals its changes.
        """
        async with self._lock:
            call = self._require(self._writer).call(_update, update)
            call.add_done_callback(functools.partial(self._committed, update))
            with _mapped_errors():
                await asyncio.shield(call)

    def _committed(self, update: Update, call: asyncio.Future[Writes]) -> None:
        """On the loop, as soon as the call ends: the change signal, then the hand-off (in
        the same turn, so before any read the signal woke has run)."""
        if call.cancelled() or call.exception() is not None:
            return
        if call.result().changed:
            self._signal(call.result().changed)
        if update.committed is not None:
            update.committed()

    async def read(self, sql: str, *args: Any) -> list[Row]:
        reader = self._require(self._reader)
        with _mapped_errors():
            return await reader.call(_fetch, sql, args)

    @staticmethod
    def _require(connection: SqliteThread | None) -> SqliteThread:
        if connection is None:
            raise StoreUnavailable("the SQLite store is not open")
        return connection


@contextmanager
def _mapped_errors() -> Iterator[None]:
    """SQLite's errors as the store's: the data refused, or the database failing."""
    try:
        yield
    except (sqlite3.DataError, sqlite3.IntegrityError) as exc:
        raise StoreRejected(f"SQLite: {exc}") from exc
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"SQLite: {exc}") from exc


def _fetch(connection: sqlite3.Connection, sql: str, args: Sequence[Any]) -> list[Row]:
    return [dict(row) for row in connection.execute(sql, args)]


def _executemany(connection: sqlite3.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    connection.executemany(sql, rows).close()


def _begin(connection: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``, after rolling back a transaction a cancelled writer left open
    (its ``BEGIN`` ran on this thread after it stopped waiting): under the store's lock, an
    open transaction can only be such a one, and would fail every write after it."""
    if connection.in_transaction:
        connection.execute("ROLLBACK")
    connection.execute("BEGIN IMMEDIATE")


def _update(connection: sqlite3.Connection, update: Update) -> Writes:
    """On the writer's thread: ``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any error
    (a failed ``COMMIT`` included, which would otherwise leave the transaction open)."""
    _begin(connection)
    try:
        writes = update.plan(_fetch(connection, update.select, update.args))
        for sql, rows in writes.statements:
            if rows:
                _insert_all(connection, sql, rows)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return writes


_VALUES = re.compile(r"VALUES (\((?:\?, )*\?\))")


def _insert_all(connection: sqlite3.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """``sql``, one ``INSERT … VALUES (?, …)``, for every row: as one statement of many
    rows (as many as SQLite takes ``?`` for), not one execution per row.

    Why: the sqlite3 module lets go of the GIL at every step of a statement, and this
    thread then waits for the event loop's thread to hand it back (up to the switch
    interval, 5 ms, while the loop is busy). ``executemany`` steps once per row; one
    statement of many rows steps once. Measured with the loop 75 % busy: apply of 50
    changes 8.0 → 4.7 ms wall (``benchmarks/store_apply.py``).
    """
    match = _VALUES.search(sql)
    per = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(rows[0])
    if match is None or per < 2:
        _executemany(connection, sql, rows)
        return
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        values = ", ".join([match.group(1)] * len(chunk))
        statement = sql[: match.start(1)] + values + sql[match.end(1) :]
        connection.execute(statement, [value for row in chunk for value in row]).close()
