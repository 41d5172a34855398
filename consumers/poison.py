"""Poison: deliveries a consumer cannot run or cannot settle are moved aside, never left behind.

Three layers, each catching what the one before cannot see:

1. ``warren.service.frames``: properties the client library cannot decode arrive
   with what could be read, plus a ``warren-unreadable`` header naming the rest
   (instead of dropping the connection on every delivery).
2. ``screen``, before a handler runs: such a delivery, and an envelope that
   names another queue than the one it was consumed from (its ``warren-queue``
   would become the routing key of its retry and its events: another queue's
   tiers, or a key longer than AMQP allows), are undecodable, and dead-lettered
   like any other.
3. ``DeliveryGuard``, around the whole delivery path: whatever still raises —
   an outcome whose messages the client library refuses to encode — is
   dead-lettered as ``unsettleable``; if even that fails the delivery is rejected
   without requeue, so the work queue's own dead-letter exchange moves it to the
   same dead-letter queue. It is never left unacked: an unacked delivery holds a
   prefetch slot until the connection closes, while ``/readyz`` says ready and
   the in-flight gauge 0.

And a dead letter copies the delivery's headers, which pamqp may decode into
values it cannot encode again (a long string that is not UTF-8 comes back as
``bytes``): ``warren.service.wire.copies`` makes it encodable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from warren.consumers.acks import ACK_ERRORS, Acks
from warren.consumers.inbound import Delivery
from warren.consumers.outcome import DeadLetter
from warren.service.errors import DecodeError
from warren.service.frames import H_UNREADABLE
from warren.service.wire import Envelope, bounded
from warren.service.wire.copies import unsettled

if TYPE_CHECKING:  # the delivery path imports ``screen``; this module only calls the settler
    from warren.consumers.settle import Settler

log = logging.getLogger(__name__)


def screen(delivery: Delivery, queue: str) -> tuple[Envelope | None, DecodeError | None]:
    """The delivery's envelope (if readable) and what makes it poison (None: nothing yet).

    An envelope of another queue is returned with this queue: the events of its dead
    letter then go where this queue's events go, under a key AMQP can carry. A copy
    Warren republished to count its deliveries (``warren-deliveries``) arrives without
    the broker's ``redelivered`` flag, and is marked redelivered here: its handler and
    events must still say an earlier delivery may have run.
    """
    unreadable = _unreadable(delivery)
    try:
        envelope = Envelope.from_delivery(delivery)
    except DecodeError as exc:
        return None, unreadable or exc
    if unsettled(delivery):
        envelope = replace(envelope, redelivered=True)
    if envelope.queue != queue:
        named = bounded(envelope.queue, 100)
        wrong = DecodeError("bad-header", f"warren-queue {named!r} is not {queue!r}")
        return replace(envelope, queue=queue), unreadable or wrong
    return envelope, unreadable


def _unreadable(delivery: Delivery) -> DecodeError | None:
    problems = (delivery.headers or {}).get(H_UNREADABLE)
    if problems is None:
        return None
    if isinstance(problems, bytes | bytearray):
        problems = problems.decode(errors="replace")
    return DecodeError("unreadable-properties", f"the client library cannot decode {problems}")


class Bound(Protocol):
    """Takes a redelivered delivery before it runs (``redelivery.DeliveryBound``)."""

    async def moved(self, delivery: Delivery) -> bool: ...


class DeliveryGuard:
    """Runs a delivery through ``process`` and makes sure it ends settled.

    ``process`` settles every delivery it can; an exception out of it (other than
    a cancellation, which requeues) means the delivery is still open. A
    redelivered delivery goes to the ``bound`` first (``warren.consumers.redelivery``).
    """

    def __init__(
        self, queue: str, settler: Settler, acks: Acks, bound: Bound | None = None
    ) -> None:
        self.queue = queue
        self._settler = settler
        self._acks = acks
        self._bound = bound

    async def run(
        self,
        process: Callable[[Delivery], Awaitable[None]],
        delivery: Delivery,
    ) -> None:
        try:
            bound = self._bound if delivery.redelivered else None
            if bound is None or not await bound.moved(delivery):
                await process(delivery)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("a delivery could not be settled; dead-lettering it")
            await self.dead_letter(delivery, exc)

    async def dead_letter(self, delivery: Delivery, exc: Exception) -> None:
        """Dead-letter as ``unsettleable`` (with its event, where the envelope is readable);
        failing that, reject without requeue: the queue's dead-letter exchange takes it."""
        envelope, _ = screen(delivery, self.queue)
        error = bounded(str(exc) or type(exc).__qualname__)
        try:
            if envelope is None:
                await self._settler.settle_undecodable(delivery, None, "unsettleable", error)
            else:
                outcome = DeadLetter("unsettleable", type(exc).__qualname__, error)
                await self._settler.settle(delivery, envelope, outcome)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "dead-lettering failed too; rejecting to the queue's dead-letter exchange"
            )
            await self._reject(delivery)

    async def _reject(self, delivery: Delivery) -> None:
        with contextlib.suppress(*ACK_ERRORS):  # a closed channel requeues it by itself
            await delivery.reject(requeue=False)
        self._acks.forget(delivery)
