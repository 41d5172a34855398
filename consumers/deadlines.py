"""Handler time limits on one loop timer per process, instead of ``asyncio.timeout`` per attempt.

``asyncio.timeout`` arms a loop timer for every attempt and cancels it when
the handler returns, nearly always long before the limit: under uvloop a
native timer allocated, started, stopped and freed per task. Attempts with
the same limit expire in the order they start, so each limit keeps a queue of
its attempts, and one timer checks the queues every ``TICK_SECONDS`` while
any attempt runs: a handler is cancelled at most that late, never early. The
expiry itself does what ``asyncio.timeout`` does: it cancels the attempt's
task, and the ``CancelledError`` that comes out becomes ``TimeoutError``
unless something else cancelled the task too.
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType

TICK_SECONDS = 0.05  # how late a time limit may be enforced
COMPACT_AFTER = 1024  # ended attempts a queue may hold beyond its live ones


class Deadline:
    """One attempt's time limit: ``with`` it around the attempt (in the attempt's task)."""

    __slots__ = ("_cancelling", "_limits", "due", "ended", "expired", "queued", "task")

    def __init__(self, limits: Deadlines, due: float) -> None:
        self._limits = limits
        self.due = due
        self.task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self.expired = False
        self.ended = False
        self.queued = True  # still in its limit's queue

    def __enter__(self) -> Deadline:
        self.task = task = asyncio.current_task()
        assert task is not None, "an attempt runs in a task"
        self._cancelling = task.cancelling()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.ended = True
        if self.queued:
            self._limits.ended += 1
        if self.expired:
            assert self.task is not None
            if self.task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc

    def expire(self) -> None:
        """The limit passed while the attempt runs: cancel its task."""
        if not self.ended and self.task is not None:
            self.expired = True
            self.task.cancel()


class Deadlines:
    """The time limits of one process's running attempts, one queue per distinct limit."""

    def __init__(self) -> None:
        self._queues: dict[float, deque[Deadline]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._size = 0  # deadlines queued, ended or not
        self.ended = 0  # of those, ended (their attempt returned)

    def limit(self, seconds: float) -> Deadline:
        """A time limit of ``seconds`` from now, for the attempt about to run."""
        loop = asyncio.get_running_loop()
        deadline = Deadline(self, loop.time() + seconds)
        queue = self._queues.get(seconds)
        if queue is None:
            queue = self._queues[seconds] = deque()
        queue.append(deadline)
        self._size += 1
        if self.ended > self._size // 2 + COMPACT_AFTER:
            self._compact()
        if self._timer is None:
            self._timer = loop.call_later(TICK_SECONDS, self._check)
        return deadline

    def _check(self) -> None:
        """Expire what is due, drop what ended, and check again while attempts remain."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._timer = None
        for queue in self._queues.values():
            while queue and (queue[0].ended or queue[0].due <= now):
                self._drop(queue.popleft()).expire()
        if self._size:
            self._timer = loop.call_later(TICK_SECONDS, self._check)

    def _drop(self, deadline: Deadline) -> Deadline:
        deadline.queued = False
        self._size -= 1
        if deadline.ended:
            self.ended -= 1
        return deadline

    def _compact(self) -> None:
        """Forget ended attempts queued behind a running one (long limits, many short tasks),
        so memory follows the attempts running, not the rate times the limit."""
        for seconds, queue in self._queues.items():
            self._queues[seconds] = deque(d for d in queue if not d.ended)
        self._size -= self.ended
        self.ended = 0
