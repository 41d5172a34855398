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
from dataclasses import dataclass, field
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


Statement = tuple[str, list[Sequence[Any]]]
"""An SQL statement with ``?`` placeholders, and the rows to run it once for each."""


@dataclass(frozen=True)
class Writes:
    """What an ``Update``'s plan decided: each statement once per row of its rows, in order,
    then a change signal for ``changed``."""

    statements: list[Statement] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


Plan = Callable[[list[Row]], Writes]


@dataclass(frozen=True)
class Update:
    """A read-modify-write as one transaction: the rows of ``select`` (locked; those of
    ``ensure`` made to exist first where the engine needs that to lock them), handed to
    ``plan``, a plain function that says what to write.

    ``plan`` does no I/O, so an engine may run the whole transaction in one call on its own
    thread (SQLite) or statement by statement on the loop (PostgreSQL); the merge rules stay
    in one place whichever runs them.

    ``committed`` is called on the loop right after the commit's change signal, in the same
    turn (the reads the signal woke run in the next one), by an engine whose signal is its
    own commit's (SQLite): the writer may hand what it wrote to those reads. PostgreSQL
    never calls it: its signals come later, from any replica, and a hand-off could be
    older than the row.
    """

    ensure: Sequence[str]
    select: str
    args: Sequence[Any]
    plan: Plan
    committed: Callable[[], None] | None = None


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

    async def update(self, update: Update) -> None:
        """Run ``update`` statement by statement in a ``write`` transaction."""
        async with self.write() as tx:
            if update.ensure:
                await tx.ensure_rows(update.ensure)
            writes = update.plan(await tx.fetch(update.select, *update.args))
            for sql, rows in writes.statements:
                if rows:
                    await tx.executemany(sql, rows)
            if writes.changed:
                await tx.notify(writes.changed)

    @abstractmethod
    async def read(self, sql: str, *args: Any) -> list[Row]:
        """One read, outside any write transaction (never waits behind the recorder's)."""

    def subscribe(self, callback: ChangeCallback) -> None:
        self._listeners.append(callback)

    def _signal(self, ids: Iterable[str] | None) -> None:
        for callback in self._listeners:
            callback(ids)
