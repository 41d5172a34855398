"""Waiting for confirms while watching for a resource alarm, without a timer per settle.

A settle waits for its outcome's confirms, and must also notice within
``period`` when the broker starts blocking the connection (then a success is
acked at once, see ``warren.consumers.settle``). ``asyncio.wait(..., timeout=)``
did both, at the price of a timer armed and cancelled, and two sets built, per
settle. Here every waiting settle shares one loop timer that wakes them all
each ``period``: a settle costs one future and a callback on each confirm.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Collection


class ConfirmWait:
    """One per settler: ``first`` returns once a confirm is done or a check is due."""

    def __init__(self, period: float) -> None:
        self._period = period
        self._waiters: set[asyncio.Future[None]] = set()
        self._timer: asyncio.TimerHandle | None = None

    async def first(self, pending: Collection[asyncio.Future[None]]) -> None:
        """Return once one of ``pending`` is done, or at the next check (at most ``period``).

        The confirms are never cancelled from here (a batch's is shared).
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        wake = functools.partial(_wake, waiter)
        for confirm in pending:
            confirm.add_done_callback(wake)
        self._waiters.add(waiter)
        if self._timer is None:
            self._timer = loop.call_later(self._period, self._check)
        try:
            await waiter
        finally:
            self._waiters.discard(waiter)
            for confirm in pending:
                confirm.remove_done_callback(wake)

    def _check(self) -> None:
        """Wake every waiter; the next one to wait arms the timer again."""
        self._timer = None
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            _wake(waiter)


def _wake(waiter: asyncio.Future[None], _done: object = None) -> None:
    if not waiter.done():
        waiter.set_result(None)
