"""The shared store: PostgreSQL, for several gateway replicas (asyncpg).

Every replica's recorder competes on the one recorder queue and writes here;
a record is read and rewritten under ``SELECT … FOR UPDATE`` (after making
sure its row exists, so two replicas' first events of one task cannot both
insert it), rows always locked in id order so batches never deadlock.

Change signals are ``pg_notify`` on a channel named after the schema, sent in
the writing transaction: PostgreSQL delivers them at commit, to every
replica's ``LISTEN`` connection, so a long-poll held by one replica wakes for
a record another replica's recorder wrote. If the listening connection drops,
notifications are lost while it is down: on reconnecting, every waiter is
woken to re-read (``None`` signal).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson

from warren.service.store.db import Database, Row, StoreRejected, StoreUnavailable
from warren.service.store.sql import TABLE, PostgresDialect

log = logging.getLogger(__name__)
NOTIFY_IDS_PER_MESSAGE = 200  # 33 bytes each: well under NOTIFY's 8000-byte payload limit
POOL_SIZE = 8
_PLACEHOLDER = re.compile(r"\?")
DATA_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)
ENGINE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError)


@functools.lru_cache(maxsize=256)
def numbered(sql: str) -> str:
    """``?`` placeholders as asyncpg's ``$1, $2, …`` (our SQL has no ``?`` in literals)."""
    counter = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


async def _init_connection(connection: asyncpg.Connection) -> None:
    await connection.set_type_codec(
        "jsonb",
        encoder=lambda value: orjson.dumps(value, default=str).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )


class _Transaction:
    def __init__(self, connection: asyncpg.pool.PoolConnectionProxy, channel: str) -> None:
        self._connection = connection
        self._channel = channel

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return [dict(row) for row in await self._connection.fetch(numbered(sql), *args)]

    async def execute(self, sql: str, *args: Any) -> None:
        await self._connection.execute(numbered(sql), *args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._connection.executemany(numbered(sql), rows)

    async def ensure_rows(self, ids: Sequence[str]) -> None:
        await self._connection.execute(
            f"INSERT INTO {TABLE} (id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
            sorted(ids),
        )

    async def notify(self, ids: Sequence[str]) -> None:
        chunks = [
            ",".join(ids[i : i + NOTIFY_IDS_PER_MESSAGE])
            for i in range(0, len(ids), NOTIFY_IDS_PER_MESSAGE)
        ]
        await self._connection.execute(
            "SELECT pg_notify($1, chunk) FROM unnest($2::text[]) AS chunk", self._channel, chunks
        )


class PostgresDatabase(Database):
    dialect = PostgresDialect()

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self.dsn = dsn
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._closing = False
        self.channel = "warren_tasks"

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.dsn, min_size=1, max_size=POOL_SIZE, init=_init_connection
        )
        schema = await self._pool.fetchval("SELECT current_schema()")
        self.channel = f"warren_tasks.{schema}"
        await self._listen()

    async def _listen(self) -> None:
        listener = await asyncpg.connect(self.dsn)
        await listener.add_listener(self.channel, self._on_notify)
        listener.add_termination_listener(self._on_listener_lost)
        self._listener = listener

    def _on_notify(self, _connection: object, _pid: int, _channel: str, payload: object) -> None:
        self._signal(str(payload).split(","))

    def _on_listener_lost(self, _connection: object) -> None:
        if not self._closing and self._reconnecting is None:
            self._reconnecting = asyncio.get_running_loop().create_task(self._relisten())

    async def _relisten(self) -> None:
        delay = 0.2
        try:
            while not self._closing:
                try:
                    await self._listen()
                except ENGINE_ERRORS as exc:
                    log.warning("store: LISTEN connection lost, retrying: %r", exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                else:
                    self._signal(None)  # what changed while deaf is unknown: everyone re-reads
                    return
        finally:
            self._reconnecting = None

    async def close(self) -> None:
        self._closing = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnecting
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @asynccontextmanager
    async def write(self) -> AsyncIterator[_Transaction]:
        try:
            async with self._require().acquire() as connection, connection.transaction():
                yield _Transaction(connection, self.channel)
        except DATA_ERRORS as exc:
            raise StoreRejected(f"PostgreSQL: {exc!r}") from exc
        except ENGINE_ERRORS as exc:
            raise StoreUnavailable(f"PostgreSQL: {exc!r}") from exc

    async def read(self, sql: str, *args: Any) -> list[Row]:
        try:
            return [dict(row) for row in await self._require().fetch(numbered(sql), *args)]
        except ENGINE_ERRORS as exc:
            raise StoreUnavailable(f"PostgreSQL: {exc!r}") from exc

    def _require(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreUnavailable("the PostgreSQL store is not open")
        return self._pool
