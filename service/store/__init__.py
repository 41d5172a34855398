"""Task records: what became of every task, kept by the gateway's recorder.

``open_store(url)`` gives a ``TaskStore`` on SQLite (``sqlite:///var/warren.db``,
the default: nothing to run) or PostgreSQL (``postgresql://…``, shared by
several gateway replicas). Both run the same code above a thin engine layer,
and the same tests.
"""

from __future__ import annotations

from pathlib import Path

from warren.service.store.db import Database
from warren.service.store.model import FINAL, AttemptRecord, Change, TaskRecord
from warren.service.store.sql import ListQuery
from warren.service.store.store import Page, TaskStore

__all__ = [
    "FINAL",
    "AttemptRecord",
    "Change",
    "ListQuery",
    "Page",
    "TaskRecord",
    "TaskStore",
    "database_for",
    "open_store",
]

SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")


def database_for(url: str) -> Database:
    """The engine a store URL names: ``sqlite:///relative/or//absolute/path`` or PostgreSQL."""
    if url.startswith(SQLITE_PREFIX):
        from warren.service.store.sqlite import SqliteDatabase

        path = url.removeprefix(SQLITE_PREFIX)
        if not path or path == ":memory:":
            raise ValueError("a SQLite store needs a file path (readers and writer share it)")
        return SqliteDatabase(Path(path))
    if url.startswith(POSTGRES_PREFIXES):
        from warren.service.store.postgres import PostgresDatabase

        return PostgresDatabase(url)
    raise ValueError(
        f"unsupported store URL {url.split(':', 1)[0]!r}: use sqlite:/// or postgresql://"
    )


async def open_store(url: str) -> TaskStore:
    """An open, migrated store."""
    store = TaskStore(database_for(url))
    try:
        await store.open()
    except BaseException:
        await store.close()
        raise
    return store
