"""A bound on deliveries that never settle: a message that kills its consumer is moved aside.

A message whose handler kills its consumer process (a segfault in a native
library, an out-of-memory kill) is never settled: the broker requeues it when
the connection drops and hands it to the next consumer, which dies too, and a
deployment crash-loops for good. Once ``WARREN_DELIVERY_LIMIT`` deliveries of a
message went unsettled, the consumer dead-letters it instead of running it
(reason ``delivery-limit``, with its ``dead`` event): it kills at most that many.

Quorum queues count unsettled deliveries themselves (``x-delivery-count`` on
each delivery) and dead-letter past ``x-delivery-limit`` (set to the same limit),
but the broker's dead letter carries no reason of Warren's and tells the event
stream nothing: the consumer acts one delivery before the broker would.

Classic queues keep no count, only the ``redelivered`` flag (an earlier delivery
was not settled). So a delivery with that flag is not run where it is: a copy
carrying ``warren-deliveries`` (how many of its deliveries went unsettled) is
published, confirmed, and only then the delivery is acked; the copy arrives
without the flag and runs as usual (its handler still sees ``ctx.redelivered``).
The broker keeps no per-message state a client can write, so a new message is
the only place a count can live; confirming it before the ack means a crash in
between can only duplicate the message, never lose it. The copy goes through
the queue's shortest retry tier, which dead-letters it to the back of the work
queue: a consumer needs no right to publish to the work exchange (its broker
user stays least-privilege), and a killer comes back no faster than that tier.

First deliveries, nearly all of them, never come here (one flag check). When the
copy cannot be published (a full tier, a blocked or lost connection), the
delivery runs in place, uncounted: a copy is not worth holding the delivery for.
Deliveries in flight beside a killer when it strikes are redelivered, and
counted, too (on quorum queues as well): the limit must stay well above the
number of crashes a task can witness by chance.
"""

from __future__ import annotations

import logging

from warren.consumers.acks import Acks
from warren.consumers.inbound import Delivery
from warren.consumers.outcome import DeadLetter
from warren.consumers.poison import screen
from warren.consumers.settle import Settler
from warren.service.amqp import Publisher
from warren.service.errors import PublishError
from warren.service.metrics import REDELIVERIES
from warren.service.settings import Settings
from warren.service.wire.copies import counted_copy, unsettled

log = logging.getLogger(__name__)
MAX_COPIED_PROPERTIES = 65_536  # bytes; a content header over the frame size closes the connection
H_QUORUM_COUNT = "x-delivery-count"  # set by quorum queues: returns of this message so far


class DeliveryBound:
    """Counts the unsettled deliveries of one work queue's messages, and bounds them."""

    def __init__(
        self, queue: str, settings: Settings, publisher: Publisher, settler: Settler, acks: Acks
    ) -> None:
        self.queue = queue
        self.limit = settings.delivery_limit
        self.quorum = settings.queue_type == "quorum"
        self._tier = publisher.names.retry_key(queue, min(settings.retry_tiers_seconds))
        self._publisher = publisher
        self._settler = settler
        self._acks = acks
        self._labels = {"queue": queue}

    async def moved(self, delivery: Delivery) -> bool:
        """Dead-letter a redelivered delivery at the limit, or (classic) requeue it counted:
        True once it is settled; False if it should run here after all."""
        count = self.unsettled(delivery)
        if count >= self.limit:
            return await self._dead_letter(delivery, count)
        if self.quorum or self._publisher.blocked:
            return False  # quorum: the queue counts; blocked: a copy might go out late, twice
        copy = counted_copy(delivery, count)
        if len(copy.properties.marshal()) > MAX_COPIED_PROPERTIES:
            log.warning("%s redelivered, too large to copy: runs uncounted", delivery.message_id)
            return False
        try:
            await self._publisher.publish(self._publisher.names.retry_exchange, copy, self._tier)
        except PublishError as exc:
            log.warning("%s redelivered, not requeued counted (%s): runs", delivery.message_id, exc)
            return False
        log.info(
            "%s redelivered (unsettled %d of %d times): requeued at the back, counted",
            delivery.message_id,
            count,
            self.limit,
        )
        REDELIVERIES.add(1, self._labels)
        await self._acks.ack(delivery)
        return True

    def unsettled(self, delivery: Delivery) -> int:
        """How many deliveries of this redelivered message went unsettled, this one's
        predecessor included."""
        if self.quorum:
            count = (delivery.headers or {}).get(H_QUORUM_COUNT)
            return count if isinstance(count, int) else 1
        return unsettled(delivery) + 1

    async def _dead_letter(self, delivery: Delivery, count: int) -> bool:
        envelope, problem = screen(delivery, self.queue)
        if envelope is None or problem is not None:
            return False  # undecodable: running it dead-letters it with its own reason
        error = f"{count} deliveries went unsettled (each time its consumer died or was cut off)"
        REDELIVERIES.add(1, self._labels)
        outcome = DeadLetter("delivery-limit", "DeliveryLimit", error)
        await self._settler.settle(delivery, envelope, outcome)
        return True
