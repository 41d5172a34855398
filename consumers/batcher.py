"""Group commit of a consumer's lifecycle events: many tasks' events in one confirmed message.

Every event must be on the broker before its delivery is acked. Published one
by one, each was a persistent message of its own: a disk write, a confirm and
a delivery to the recorder's queue per task, as much broker work as the task
itself. The batcher of a process publishes instead:

* at once when no batch is in flight (an idle consumer adds no latency);
* while one is in flight, events accumulate and go as the next batch when its
  confirm (or failure) arrives: the slower the broker's disk, the larger the
  batch, so the broker's work per task falls as the load rises;
* under load only (the batch just confirmed carried a quarter of
  ``event_batch_min_events`` or more), fewer than ``event_batch_min_events``
  waiting events wait up to ``event_batch_linger_seconds`` for more, and go at
  once when that many are there: a fast broker's confirm would otherwise cut
  batches short, at a few milliseconds more hold per delivery (the prefetch
  covers them). An idle consumer's events never wait.

A batch is one message per routing key ``<queue>.<status>``
(``warren.service.wire.batches``), each bounded in events and bytes (a larger
one is split). The messages of a batch go out in the order of a task's life
(``running``, then ``retrying``, then outcomes), so a subscriber still sees
an attempt's ``running`` before its outcome. ``add`` hands back the confirm of
the message that will carry the event: a future shared by every event in it,
which callers must never cancel. The settler waits for it before the ack, so
the guarantee is unchanged: an outcome is durable on the broker before its
task is acked. A batch whose confirm has not come within the publish timeout,
while the broker is not blocking us, counts as failed (its settles requeue)
and the next one goes: one lost confirm never stalls the process's events.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass, field

from warren.service.amqp import Publisher
from warren.service.errors import PublishError
from warren.service.settings import ConsumerSettings
from warren.service.store.merge import PHASE
from warren.service.store.model import Status
from warren.service.topology import Names
from warren.service.wire import event_batch


@dataclass
class _Message:
    """The events of one routing key that will go in one message, and its confirm."""

    key: str
    phase: int  # where its status falls in a task's life: the order messages go out in
    confirm: asyncio.Future[None]
    events: list[bytes] = field(default_factory=list)
    size: int = 0
    settled: bool = False  # confirmed, failed, or given up on (overdue)

    def fits(self, event: bytes, max_events: int, max_bytes: int) -> bool:
        if not self.events:
            return True  # an event larger than the bound goes alone
        return len(self.events) < max_events and self.size + len(event) + 1 <= max_bytes


class EventBatcher:
    """One per consumer process: ``add`` an event, await what it returns before the ack."""

    def __init__(self, publisher: Publisher, settings: ConsumerSettings) -> None:
        self._publisher = publisher
        self._max_events = settings.event_batch_max_events
        self._max_bytes = settings.event_batch_max_bytes
        self._min_events = settings.event_batch_min_events
        self._linger_seconds = settings.event_batch_linger_seconds
        self._loaded = max(2, self._min_events // 4)  # a batch this large means load
        self._linger: asyncio.TimerHandle | None = None
        self._waiting = 0  # events added since the last flush
        self._flown = 0  # events of the batch in flight
        self._shared: set[asyncio.Future[None]] = set()  # confirms handed out, not yet done
        self._open: dict[str, _Message] = {}  # routing key → the message it fills now
        self._closed: list[_Message] = []  # full ones, waiting for the next flush
        self._flying: list[_Message] = []  # the batch in flight: published, not all settled
        self._overdue: asyncio.TimerHandle | None = None
        self._scheduled = False
        self._idle = asyncio.Event()
        self._idle.set()
        self.unconfirmed = 0  # events added and not yet confirmed (or failed)
        self.messages = 0  # messages published: what the broker was asked to store
        self.events = 0

    def add(self, event: bytes, queue: str, status: Status) -> asyncio.Future[None]:
        """Queue ``event`` (encoded: ``warren.service.wire.event_of``), ``queue``'s task
        reaching ``status``, for the next batch; the future is its message's confirm.

        It fails with ``PublishError`` like a publish; never cancel it (it is shared).
        """
        key = Names.event_key(queue, status.value)
        message = self._open.get(key)
        if message is None or not message.fits(event, self._max_events, self._max_bytes):
            if message is not None:
                self._closed.append(message)
            phase = PHASE[status]
            message = self._open[key] = _Message(key, phase, self._shared_future())
        message.events.append(event)
        message.size += len(event) + 1
        self.unconfirmed += 1
        self._waiting += 1
        self._idle.clear()
        if not self._flying and not self._scheduled:
            # Next loop turn, not now: the other events settled in this turn join the batch.
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        elif self._linger is not None and self._waiting >= self._min_events:
            self._flush()  # the lingering batch is full enough: it goes now
        return message.confirm

    def carries(self, confirm: asyncio.Future[None]) -> bool:
        """Whether ``confirm`` is one of this batcher's (shared: not to be cancelled)."""
        return confirm in self._shared

    async def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` for every event added to be confirmed; how many were not."""
        if self.unconfirmed:
            try:
                async with asyncio.timeout(max(timeout, 0.01)):
                    await self._idle.wait()
            except TimeoutError:
                pass
        return self.unconfirmed

    def _flush(self) -> None:
        """Publish everything waiting, one message per routing key (and per bound)."""
        self._scheduled = False
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        messages = sorted([*self._closed, *self._open.values()], key=lambda m: m.phase)
        self._closed, self._open = [], {}
        self._flying = messages
        self._flown, self._waiting = self._waiting, 0
        for message in messages:
            sent = self._publisher.send_event(event_batch(message.key, message.events))
            sent.add_done_callback(functools.partial(self._sent, message))
        self.messages += len(messages)
        self._arm()

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._overdue = loop.call_later(self._publisher.timeout, self._give_up)

    def _give_up(self) -> None:
        """No confirm within the publish timeout, the broker not blocking us: the batch counts
        as failed (its settles requeue their deliveries) and the next one goes. Waiting on
        would stall every event of this process behind one lost confirm."""
        self._overdue = None
        if self._publisher.blocked:
            self._arm()  # an alarm: confirms come when it clears, however long that is
            return
        error = PublishError(f"no confirm within {self._publisher.timeout}s (outcome unknown)")
        for message in list(self._flying):
            if not message.settled:
                self._settle(message, error)

    def _shared_future(self) -> asyncio.Future[None]:
        confirm: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._shared.add(confirm)
        confirm.add_done_callback(self._done)
        return confirm

    def _done(self, confirm: asyncio.Future[None]) -> None:
        self._shared.discard(confirm)
        if not confirm.cancelled():
            confirm.exception()  # retrieved: a failure whose settles gave up is no loop error

    def _sent(self, message: _Message, sent: asyncio.Future[None]) -> None:
        if message.settled:
            return  # given up on already: a late confirm changes nothing now
        if sent.cancelled():
            self._settle(message, PublishError("the publish was cancelled"))
        else:
            self._settle(message, sent.exception())

    def _settle(self, message: _Message, error: BaseException | None) -> None:
        """``message`` is confirmed (``error`` None) or failed; once the whole batch is,
        what accumulated meanwhile goes as the next one."""
        message.settled = True
        self.events += len(message.events)
        self.unconfirmed -= len(message.events)
        if not message.confirm.done():
            if error is None:
                message.confirm.set_result(None)
            else:
                message.confirm.set_exception(error)
        if not all(m.settled for m in self._flying):
            return
        self._flying = []
        if self._overdue is not None:
            self._overdue.cancel()
            self._overdue = None
        if self._open or self._closed:
            self._next_batch()
        elif not self.unconfirmed:
            self._idle.set()

    def _next_batch(self) -> None:
        """What waits goes now, or, under load and short of ``event_batch_min_events``,
        within the linger (``add`` sends it sooner once it has that many)."""
        loaded = self._flown >= self._loaded
        if self._linger_seconds and loaded and self._waiting < self._min_events:
            self._scheduled = True
            loop = asyncio.get_running_loop()
            self._linger = loop.call_later(self._linger_seconds, self._flush)
        else:
            self._flush()
