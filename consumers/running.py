"""One attempt's ``running`` lifecycle event, due only if the handler outlasts a delay.

``running`` goes out only once a handler has run for
``running_event_delay_seconds`` (at once with 0): most short tasks end sooner
and publish just their outcome, which carries ``started_at`` instead.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

Publish = Callable[[datetime], asyncio.Future[None]]
CHECKS_PER_DELAY = 4  # a ``running`` goes out at most a quarter of the delay late


class RunningEvent:
    """One attempt's ``running`` event: published at once, when it falls due, or never.

    It goes to the event batcher while the handler runs, so it is in the
    outcome's batch or an earlier one, and a batch sends ``running`` before
    outcomes: subscribers see it first.
    """

    __slots__ = ("_confirm", "_ended", "_publish", "due", "started_at")

    def __init__(self, publish: Publish, due: float) -> None:
        self.started_at = datetime.now(UTC)
        self.due = due  # on the loop's clock
        self._publish = publish
        self._confirm: asyncio.Future[None] | None = None
        self._ended = False

    def end(self) -> list[asyncio.Future[None]]:
        """The attempt is over: no ``running`` from now on; its confirm, if it was published."""
        self._ended = True
        return [self._confirm] if self._confirm is not None else []

    def cancel(self) -> None:
        """The attempt was abandoned (shutdown): no ``running`` from now on, and nothing of
        it is awaited. One already in a batch still goes out (the confirm is shared)."""
        self.end()

    def fire(self) -> None:
        """Due: publish, unless the attempt is over already."""
        if not self._ended and self._confirm is None:
            self._confirm = self._publish(self.started_at)


class RunningTimers:
    """The ``running`` events of one process's attempts, on one loop timer.

    A ``call_later`` per attempt, cancelled when the handler returns (nearly
    always first), was a timer armed and disarmed per task. Every attempt has
    the same delay, so the events fall due in the order they start: a queue,
    checked by one timer when its head is due (and, while attempts keep
    starting, at most ``CHECKS_PER_DELAY`` times per delay). An attempt is
    never published early; an ended one leaves the queue when the check reaches it.
    """

    def __init__(self, delay: float) -> None:
        self._delay = delay
        self._tick = delay / CHECKS_PER_DELAY
        self._pending: deque[RunningEvent] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def start(self, publish: Publish) -> RunningEvent:
        """An attempt starts now: its ``running`` event, due after the delay (0: at once)."""
        loop = asyncio.get_running_loop()
        event = RunningEvent(publish, loop.time() + self._delay)
        if self._delay <= 0:
            event.fire()
        else:
            self._pending.append(event)
            if self._timer is None:
                self._timer = loop.call_at(event.due, self._check)
        return event

    def _check(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        pending = self._pending
        self._timer = None
        try:
            while pending and pending[0].due <= now:
                pending.popleft().fire()
        finally:  # a publish that raised (the loop logs it) stops no later check
            if pending:
                self._timer = loop.call_at(max(pending[0].due, now + self._tick), self._check)
