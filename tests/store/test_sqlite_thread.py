"""``SqliteThread``: whole functions on aiosqlite's connection thread, in order.

These fail if a release of aiosqlite changes the private ``_execute``/``_conn`` the
module relies on (see its docstring).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from warren.service.store.sqlite_thread import SqliteThread


def _where(connection: sqlite3.Connection, tag: str) -> tuple[str, int, bool]:
    return tag, threading.get_ident(), isinstance(connection, sqlite3.Connection)


def _insert(connection: sqlite3.Connection, value: int) -> None:
    connection.execute("INSERT INTO t VALUES (?)", (value,))


def _values(connection: sqlite3.Connection) -> list[int]:
    return [row["v"] for row in connection.execute("SELECT v FROM t ORDER BY rowid")]


async def test_a_call_runs_on_the_connections_thread_with_its_sqlite3_connection(
    tmp_path: Path,
) -> None:
    db = await SqliteThread.open(tmp_path / "t.db", ["PRAGMA busy_timeout = 100"])
    try:
        tag, thread, plain = await db.call(_where, "x")
        assert (tag, plain) == ("x", True)
        assert thread != threading.get_ident()
    finally:
        await db.close()


async def test_calls_run_in_the_order_they_were_handed_over(tmp_path: Path) -> None:
    db = await SqliteThread.open(tmp_path / "t.db", [])
    try:
        await db.call(lambda c: c.execute("CREATE TABLE t (v INTEGER)").close())
        calls = [db.call(_insert, n) for n in range(50)]  # not awaited one by one
        values = db.call(_values)
        for call in calls:
            await call
        assert await values == list(range(50))  # rows by name: row_factory is sqlite3.Row
    finally:
        await db.close()


async def test_an_error_in_the_function_reaches_the_caller(tmp_path: Path) -> None:
    db = await SqliteThread.open(tmp_path / "t.db", [])
    try:
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            await db.call(_values)
        assert await db.call(_where, "still usable")
    finally:
        await db.close()
