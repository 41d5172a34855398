"""An aiosqlite connection to which whole functions are handed, not single statements.

Why: aiosqlite's public methods run one statement per trip to its thread, and
each trip's answer waits for the event loop (and the GIL) before the next
statement can go. A write transaction of the recorder is five such trips
(BEGIN, SELECT, the upsert, the cursor's close, COMMIT); on a gateway whose
loop waits for a core, each trip costs a wait, and the transaction took
60 to 230 ms of wall time for 6.5 ms of work. Here a transaction is one function
run on the connection's thread, so the loop is woken once per transaction.

aiosqlite (the project's SQLite library) queues functions for its thread with
``Connection._execute``, the method its own public ones are built on; it has no
public name. This module is the one place that uses it, and
``tests/store/test_sqlite_thread.py`` fails if a release of aiosqlite changes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import aiosqlite

P = ParamSpec("P")
T = TypeVar("T")


class SqliteThread:
    """An aiosqlite connection; ``call`` runs a function with its ``sqlite3`` connection."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection

    @classmethod
    async def open(cls, path: Path, pragmas: Sequence[str]) -> SqliteThread:
        """Connected in autocommit mode (transactions are explicit ``BEGIN``s), rows by name.

        Shielded: an open cancelled midway (a SIGTERM during start-up) runs to its end
        and is closed, or aiosqlite's thread reports to a loop that is gone, or outlives it.
        """
        opening = asyncio.ensure_future(_connect(path, pragmas))
        try:
            return cls(await asyncio.shield(opening))
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await (await opening).close()
            raise

    def call(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> asyncio.Future[T]:
        """``fn(connection, *args)`` on the connection's thread, after every earlier call."""
        connection = self._connection
        run = cast(Any, connection)._execute  # see the module's docstring
        done: Coroutine[Any, Any, T] = run(fn, _sqlite(connection), *args, **kwargs)
        return asyncio.ensure_future(done)

    async def close(self) -> None:
        """Closed after every call already handed over; the thread then ends."""
        await self._connection.close()


def _sqlite(connection: aiosqlite.Connection) -> sqlite3.Connection:
    """The ``sqlite3`` connection inside, only ever used on aiosqlite's thread."""
    return cast(sqlite3.Connection, cast(Any, connection)._conn)


async def _connect(path: Path, pragmas: Sequence[str]) -> aiosqlite.Connection:
    connection = await aiosqlite.connect(path, isolation_level=None)
    try:
        connection.row_factory = sqlite3.Row
        for pragma in pragmas:
            await connection.execute_fetchall(pragma)
    except BaseException:
        await connection.close()  # its thread would keep the process alive
        raise
    return connection
