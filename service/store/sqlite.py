"""The embedded store: one SQLite file, for one gateway process (the default).

Two connections, each on its own thread (aiosqlite): a writer, whose
transactions are ``BEGIN IMMEDIATE`` and taken one at a time, and a reader,
which WAL mode lets read the last commit while a batch is being written.
``synchronous=NORMAL`` with WAL survives a crash of the process; a power
loss may lose the last commits, never corrupt the file.

Change signals are plain calls after the commit: a second gateway process on
the same file would not hear them, which is why several replicas need
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from warren.service.store.db import Database, Row, StoreRejected, StoreUnavailable
from warren.service.store.sql import SqliteDialect

BUSY_TIMEOUT_MS = 5000


class _Transaction:
    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection
        self.changed: list[str] = []

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return [dict(row) for row in await self._connection.execute_fetchall(sql, args)]

    async def execute(self, sql: str, *args: Any) -> None:
        await self._connection.execute_fetchall(sql, args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await (await self._connection.executemany(sql, rows)).close()

    async def ensure_rows(self, ids: Sequence[str]) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already holds the only write lock."""

    async def notify(self, ids: Sequence[str]) -> None:
        self.changed.extend(ids)


class SqliteDatabase(Database):
    dialect = SqliteDialect()

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._writer = await self._connect()
            await self._writer.execute_fetchall("PRAGMA journal_mode = WAL")
            self._reader = await self._connect()
        except BaseException:
            await self.close()  # its threads would otherwise keep the process alive
            raise

    async def _connect(self) -> aiosqlite.Connection:
        """Shielded: an open cancelled midway (a SIGTERM during start-up) runs to its end and
        is closed, or aiosqlite's thread reports to a loop that is gone, or outlives it."""
        opening = asyncio.ensure_future(self._open_connection())
        try:
            return await asyncio.shield(opening)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await (await opening).close()
            raise

    async def _open_connection(self) -> aiosqlite.Connection:
        connection = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            connection.row_factory = sqlite3.Row
            await connection.execute_fetchall(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await connection.execute_fetchall("PRAGMA synchronous = NORMAL")
        except BaseException:
            await connection.close()  # its thread would keep the process alive
            raise
        return connection

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
            try:
                await writer.execute_fetchall("BEGIN IMMEDIATE")
                try:
                    yield tx
                except BaseException:
                    await writer.execute_fetchall("ROLLBACK")
                    raise
                await writer.execute_fetchall("COMMIT")
            except (sqlite3.DataError, sqlite3.IntegrityError) as exc:
                raise StoreRejected(f"SQLite: {exc}") from exc
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"SQLite: {exc}") from exc
        if tx.changed:
            self._signal(tx.changed)

    async def read(self, sql: str, *args: Any) -> list[Row]:
        reader = self._require(self._reader)
        try:
            return [dict(row) for row in await reader.execute_fetchall(sql, args)]
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite: {exc}") from exc

    @staticmethod
    def _require(connection: aiosqlite.Connection | None) -> aiosqlite.Connection:
        if connection is None:
            raise StoreUnavailable("the SQLite store is not open")
        return connection
