"""The little a store needs from a database engine: write transactions, reads, change signals.

``TaskStore`` is written once against this interface; ``sqlite`` and
``postgres`` implement it. Change signals are part of it because they differ
by engine: SQLite is one process's file, so its signal is a call after the
commit; PostgreSQL serves several gateway replicas, so its signal is a
``NOTIFY`` sent with the commit and heard by every replica's ``LISTEN``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from warren.service.errors import WarrenError
from warren.service.store.sql import Dialect


class StoreUnavailable(WarrenError):
    """The database failed or could not be reached; what was being written was not."""


class StoreRejected(WarrenError):
    """The database refused the data itself (e.g. a NUL character in text): retrying the same
    write cannot help."""


Row = dict[str, Any]
ChangeCallback = Callable[[Iterable[str] | None], None]
"""Told the ids of changed records after their commit; ``None`` means "maybe any"."""


class Transaction(Protocol):
    """Statements of one transaction, with ``?`` placeholders."""

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...

    async def execute(self, sql: str, *args: Any) -> None: ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    async def ensure_rows(self, ids: Sequence[str]) -> None:
        """Make sure a row exists for each id, so that it can be locked (PostgreSQL)."""

    async def notify(self, ids: Sequence[str]) -> None:
        """Signal these records' change to every listener once the transaction commits."""


class Database(ABC):
    """One engine's connections."""

    dialect: Dialect

    def __init__(self) -> None:
        self._listeners: list[ChangeCallback] = []

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def write(self) -> AbstractAsyncContextManager[Transaction]:
        """A write transaction: committed on normal exit, rolled back on an exception."""

    @abstractmethod
    async def read(self, sql: str, *args: Any) -> list[Row]:
        """One read, outside any write transaction (never waits behind the recorder's)."""

    def subscribe(self, callback: ChangeCallback) -> None:
        self._listeners.append(callback)

    def _signal(self, ids: Iterable[str] | None) -> None:
        for callback in self._listeners:
            callback(ids)
