"""One attempt's ``running`` lifecycle event, due only if the handler outlasts a delay.

``running`` goes out only once a handler has run for
``running_event_delay_seconds`` (at once with 0): most short tasks end sooner
and publish just their outcome, which carries ``started_at`` instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime


class RunningEvent:
    """One attempt's ``running`` event: published at once, when a timer fires, or never.

    A timer handle on the loop, not a task: it costs a heap push and pop, far
    less than the publish it often saves. It goes to the event batcher while the
    handler runs, so it is in the outcome's batch or an earlier one, and a batch
    sends ``running`` before outcomes: subscribers see it first.
    """

    def __init__(self, publish: Callable[[datetime], asyncio.Future[None]], delay: float):
        self.started_at = datetime.now(UTC)
        self._publish = publish
        self._confirm: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        if delay <= 0:
            self._fire()
        else:
            self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def end(self) -> list[asyncio.Future[None]]:
        """The attempt is over: no ``running`` from now on; its confirm, if it was published."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return [self._confirm] if self._confirm is not None else []

    def cancel(self) -> None:
        """The attempt was abandoned (shutdown): no ``running`` from now on, and nothing of
        it is awaited. One already in a batch still goes out (the confirm is shared)."""
        self.end()

    def _fire(self) -> None:
        self._timer = None
        self._confirm = self._publish(self.started_at)
