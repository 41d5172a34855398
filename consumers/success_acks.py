"""Successes acked from their batch's confirm, not from each delivery's task.

A success's only publish is its event, which rides in the process's event batch
(``EventBatcher``): many deliveries wait on the one confirm of the message that
carries their events. Waiting in each delivery's task cost two wake-ups per
delivery after the confirm (the confirm wait, then the coalesced ack) and a
waiter with callbacks on the confirm. Here the deliveries of a confirm are kept
in one list; the confirm's done-callback acks them all (one ``multiple`` ack,
``Acks``), counts them, and wakes each delivery's task once, when its ack is
written: the consumer's in-flight set, its drain and the broker's prefetch see
a delivery settled only then, as before.

What a settle waiting on its own confirms guarantees still holds (``Settler``):

* no ack before the confirm: only the confirm's callback, or an alarm, acks;
* a failed confirm (a nack, or the batcher's own timeout): the task requeues;
* no confirm within the publish timeout while not blocked: the task requeues
  (looked at every ``period`` by one timer, while anything is held);
* under a resource alarm that look acks the held successes at once and leaves
  their confirms to follow (``defer``); with too many events deferred already,
  it holds them until the alarm clears, their timeout starting again.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable

from warren.consumers.acks import Acks
from warren.consumers.inbound import Delivery
from warren.service.amqp import Publisher
from warren.service.errors import PublishError

Confirm = asyncio.Future[None]
# (task type, when its settle started; None if acked ahead of its confirm): count it
Counted = Callable[[str, float | None], None]
# Leave these confirms to follow an alarm; False if too many events are deferred already
Defer = Callable[[set[Confirm]], bool]


class _Held:
    """One success waiting for its batch's confirm (a slotted class: one per delivery)."""

    __slots__ = ("deadline", "delivery", "started", "task_type", "waiter")

    def __init__(
        self,
        delivery: Delivery,
        task_type: str,
        started: float,
        deadline: float,
        waiter: asyncio.Future[BaseException | None],
    ) -> None:
        self.delivery = delivery
        self.task_type = task_type
        self.started = started
        self.deadline = deadline
        # Done once acked (None), or with why not; cancelled with its task (then skipped).
        self.waiter = waiter


class SuccessAcks:
    """One per settler: ``hold`` a success until its confirm's callback has acked it."""

    def __init__(
        self, publisher: Publisher, acks: Acks, period: float, counted: Counted, defer: Defer
    ) -> None:
        self._publisher = publisher
        self._acks = acks
        self._period = period
        self._counted = counted
        self._defer = defer
        self._groups: dict[Confirm, list[_Held]] = {}
        self._timer: asyncio.TimerHandle | None = None

    async def hold(
        self, delivery: Delivery, confirm: Confirm, task_type: str
    ) -> BaseException | None:
        """Return once ``delivery`` is acked (None), or with the error that keeps it from
        being acked (a ``PublishError``: requeue it). ``confirm`` must not be done yet."""
        # The confirm's loop: ``asyncio.get_running_loop()`` costs a getpid call on 3.11.
        loop = confirm.get_loop()
        started = time.perf_counter()
        waiter: asyncio.Future[BaseException | None] = loop.create_future()
        held = _Held(delivery, task_type, started, started + self._publisher.timeout, waiter)
        group = self._groups.get(confirm)
        if group is None:
            group = self._groups[confirm] = []
            confirm.add_done_callback(self._confirmed)
        group.append(held)
        if self._timer is None:
            self._timer = loop.call_later(self._period, self._look)
        return await waiter

    def _confirmed(self, confirm: Confirm) -> None:
        group = self._groups.pop(confirm, None)
        if not group:
            return  # acked under an alarm already, or every one gave up
        if confirm.cancelled():
            _tell(group, PublishError("the publish was cancelled"))
        elif (error := confirm.exception()) is not None:
            _tell(group, error)
        else:
            self._ack(group, deferred=False)

    def _ack(self, group: list[_Held], *, deferred: bool) -> None:
        """Ack the group's deliveries in this turn; wake their tasks once the acks are sent."""
        sent: asyncio.Future[None] | None = None
        for held in group:
            if held.waiter.done():
                continue  # its task was cancelled (a stop): left unacked, the broker requeues
            sent = self._acks.release(held.delivery)
            self._counted(held.task_type, None if deferred else held.started)
        if sent is not None:
            sent.add_done_callback(functools.partial(_written, group))

    def _look(self) -> None:
        """Every ``period`` while anything is held: the alarm, then the publish timeout."""
        self._timer = None
        if self._publisher.blocked:
            self._under_alarm()
        else:
            self._expire(time.perf_counter())
        if self._groups:
            self._timer = asyncio.get_running_loop().call_later(self._period, self._look)

    def _under_alarm(self) -> None:
        """No confirm comes while the broker blocks us: the successes are acked now, and
        their events follow; failing that (too many deferred), they wait, the timeout on
        hold. A confirm already done is left to its callback (it may have failed)."""
        waiting = {confirm: group for confirm, group in self._groups.items() if not confirm.done()}
        if waiting and self._defer(set(waiting)):
            for confirm, group in waiting.items():
                del self._groups[confirm]
                self._ack(group, deferred=True)
            return
        deadline = time.perf_counter() + self._publisher.timeout
        for group in self._groups.values():
            for held in group:
                held.deadline = max(held.deadline, deadline)

    def _expire(self, now: float) -> None:
        """Give up on the held whose confirm is overdue (their tasks requeue them); the
        confirm is shared, so it is left alone."""
        for group in self._groups.values():
            if not group or group[0].deadline > now:
                continue  # held in arrival order: the first is the most overdue
            error = PublishError(f"no confirm within {self._publisher.timeout}s (unknown)")
            _tell([held for held in group if held.deadline <= now], error)
            group[:] = [held for held in group if held.deadline > now]


def _tell(group: list[_Held], error: BaseException | None) -> None:
    for held in group:
        if not held.waiter.done():
            held.waiter.set_result(error)


def _written(group: list[_Held], sent: asyncio.Future[None]) -> None:
    """The group's acks are sent (or sending failed in an unforeseen way: its tasks raise)."""
    error = None if sent.cancelled() else sent.exception()
    _tell(group, error)
