"""One ``sqlite3`` connection on a thread of its own, to which whole functions are handed.

Why not aiosqlite's connection: it runs one statement per trip to its thread,
and each trip's answer waits for the event loop (and the GIL) before the next
statement can go. A write transaction of the recorder is five such trips
(BEGIN, SELECT, the upsert, the cursor's close, COMMIT); on a gateway whose
loop waits for a core, each trip costs a wait, and the transaction took
60 to 230 ms of wall time for 6.5 ms of work. Here a transaction is one function
run on the thread, so the loop is woken once per transaction. aiosqlite 0.22
runs functions on its thread only through private API (``Connection._execute``),
hence this small wrapper over a one-thread executor instead.

The connection is made, used and closed on that one thread only.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class SqliteThread:
    """A connection and the thread it lives on; ``call`` runs a function there."""

    def __init__(self, executor: ThreadPoolExecutor, connection: sqlite3.Connection) -> None:
        self._executor = executor
        self._connection = connection

    @classmethod
    async def open(cls, path: Path, pragmas: Sequence[str]) -> SqliteThread:
        """Connected in autocommit mode (transactions are explicit ``BEGIN``s), rows by name.

        An open cancelled midway (a SIGTERM during start-up) still runs to its end on
        the thread, and what it opened is closed, so no connection is left behind.
        """
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warren-sqlite")
        opening = asyncio.get_running_loop().run_in_executor(executor, _connect, path, pragmas)
        try:
            connection = await asyncio.shield(opening)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                executor.submit((await opening).close)
            executor.shutdown(wait=False)
            raise
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(executor, connection)

    def call(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> asyncio.Future[T]:
        """``fn(connection, *args)`` on the connection's thread, after every earlier call."""
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, lambda: fn(self._connection, *args, **kwargs))

    async def close(self) -> None:
        """Closed after every call already handed over; the thread then ends."""
        try:
            await self.call(sqlite3.Connection.close)
        finally:
            self._executor.shutdown(wait=False)


def _connect(path: Path, pragmas: Sequence[str]) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
    try:
        connection.row_factory = sqlite3.Row
        for pragma in pragmas:
            connection.execute(pragma).fetchall()
    except BaseException:
        connection.close()
        raise
    return connection
