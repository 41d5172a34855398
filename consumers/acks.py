"""Acks of one consumer's deliveries, coalesced: one ``basic.ack(multiple)`` for many.

Delivery tags on a channel count up from 1 in delivery order, and an ack with
``multiple=True`` up to tag T settles *every* delivery ≤ T still unacked on that
channel. So it is sent only below the lowest tag still open (delivered, not yet
settled): every delivery is tracked from its arrival (``track``), and a tag
leaves the open set only once its ack is wanted (``ack``) or its nack has been
sent (``forget``). A delivery whose settling failed in an unforeseen way stays
open for good: later acks on that channel then go one by one, never over it.

Acks wanted in the same event-loop turn are sent together. Those above an open
tag go out one by one in the same flush, so a slow task never holds back the
acks of the fast ones behind it (each would keep a prefetch slot).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aio_pika.exceptions import AMQPError, ChannelInvalidStateError

from warren.consumers.inbound import Delivery

log = logging.getLogger(__name__)
ACK_ERRORS = (AMQPError, ChannelInvalidStateError, RuntimeError)


@dataclass
class _Lane:
    """The deliveries of one AMQP channel (a reconnect opens a new one; tags restart at 1)."""

    open: set[int] = field(default_factory=set)
    ready: dict[int, Delivery] = field(default_factory=dict)
    next_tag: int = 1
    contiguous: bool = True  # every tag from 1 on was seen: multiple acks are safe

    def take(self) -> list[tuple[Delivery, bool]]:
        """The acks to send now, as (delivery, multiple): one multiple ack below the lowest
        open tag, then one each for the rest."""
        floor = min(self.open, default=self.next_tag)
        below = [tag for tag in self.ready if tag < floor] if self.contiguous else []
        sends = [(self.ready.pop(max(below)), True)] if below else []
        for tag in below:
            self.ready.pop(tag, None)
        sends += [(delivery, False) for delivery in self.ready.values()]
        self.ready.clear()
        return sends


class Acks:
    """Tracks every delivery of a consumer from arrival to ack, and sends acks in batches."""

    def __init__(self) -> None:
        self._lanes: dict[object, _Lane] = {}
        self._flush: asyncio.Future[None] | None = None  # the acks of this turn, once sent
        self.frames = 0  # ack frames sent: what the coalescing saves the broker shows here

    def track(self, delivery: Delivery) -> None:
        """Call on arrival, before anything can settle it."""
        lane = self._lane(delivery)
        tag = delivery.delivery_tag
        if tag != lane.next_tag:
            lane.contiguous = False  # not a channel of ours alone: no multiple acks on it
        lane.next_tag = max(lane.next_tag, tag + 1)
        lane.open.add(tag)

    def forget(self, delivery: Delivery) -> None:
        """The delivery was settled otherwise (its nack is sent, or its channel is gone)."""
        self._lane(delivery).open.discard(delivery.delivery_tag)

    async def ack(self, delivery: Delivery) -> None:
        """Ack ``delivery`` with the others wanted in this turn; return once it is sent."""
        await asyncio.shield(self.release(delivery))

    def release(self, delivery: Delivery) -> asyncio.Future[None]:
        """Want ``delivery`` acked with the others of this turn, without waiting: the future
        is done once its ack is sent (shared by the turn's acks: never cancel it). For a
        callback that acks many deliveries at once and has no task to wait in."""
        lane = self._lane(delivery)
        tag = delivery.delivery_tag
        lane.open.discard(tag)
        lane.ready[tag] = delivery
        if self._flush is None:
            self._flush = asyncio.ensure_future(self._send())
        return self._flush

    async def _send(self) -> None:
        await asyncio.sleep(0)  # let the other deliveries settled in this turn join
        self._flush = None
        for lane in list(self._lanes.values()):
            for delivery, multiple in lane.take():
                try:
                    self.frames += 1
                    await delivery.ack(multiple=multiple)
                except ACK_ERRORS as exc:
                    log.warning("ack failed (%r); the broker will redeliver", exc)
        self._drop_closed()

    def _lane(self, delivery: Delivery) -> _Lane:
        """The lane of the delivery's channel (a reconnect opens a new one: a new lane)."""
        key = delivery.channel  # closed or not: its tags are its own
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        return lane

    def _drop_closed(self) -> None:
        for key, lane in list(self._lanes.items()):
            if getattr(key, "is_closed", False) and not lane.ready:
                del self._lanes[key]
