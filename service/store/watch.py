"""Waiters on task records in this process, woken by the store's change signal.

A long-poll or an event stream subscribes *before* it reads the record, so a
change between its read and its wait is never missed; a wake-up only says
"read again", and one read per change is all a waiter costs the database —
nothing polls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from contextlib import contextmanager


class Watch:
    """One waiter's wake-up flag."""

    def __init__(self, hub: Watchers) -> None:
        self._event = asyncio.Event()
        self._hub = hub

    def wake(self) -> None:
        self._event.set()

    @property
    def closed(self) -> bool:
        """The gateway is stopping: waiters answer with what they have."""
        return self._hub.closed

    async def wait(self, timeout: float) -> bool:
        """True when woken (a change, or closing) within ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError:
            return False
        self._event.clear()
        return True


class Watchers:
    def __init__(self) -> None:
        self._by_id: dict[str, set[Watch]] = {}
        self.closed = False

    @contextmanager
    def watch(self, task_id: str) -> Iterator[Watch]:
        watch = Watch(self)
        self._by_id.setdefault(task_id, set()).add(watch)
        if self.closed:
            watch.wake()
        try:
            yield watch
        finally:
            waiting = self._by_id.get(task_id)
            if waiting is not None:
                waiting.discard(watch)
                if not waiting:
                    del self._by_id[task_id]

    def changed(self, ids: Iterable[str] | None) -> None:
        """The store's change signal: wake the waiters of these ids (None: all)."""
        if ids is None:
            for waiting in self._by_id.values():
                for watch in waiting:
                    watch.wake()
            return
        for task_id in ids:
            for watch in self._by_id.get(task_id, ()):
                watch.wake()

    def close(self) -> None:
        self.closed = True
        self.changed(None)

    def __len__(self) -> int:
        return sum(len(w) for w in self._by_id.values())
