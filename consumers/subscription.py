"""The consumer's ``basic.consume``, made through aiormq and kept alive by Warren itself.

aio-pika's robust queue restores the consumers made through it after a
reconnect, and after the broker cancels one (a deleted queue); but a consumer
made through it gets an ``IncomingMessage`` built and a task started per
delivery (``warren.consumers.inbound``). This consumes on the robust channel's
underlying aiormq channel and restores what the robust queue would have:

* after every reopen of the channel (a reconnect, or a channel closed by an
  error), the queue is declared again by the robust channel (it was declared
  through it), then consumed again here, from the channel's reopen callback;
* after the broker cancels it, the queue is declared again (it may have been
  deleted) and consumed again, on the same channel.

A failed attempt is retried every ``RETRY_SECONDS`` until it works or the
channel reopens (which tries again by itself). The consumer tag stays the same
throughout, so logs and the broker's listings show one consumer.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from aio_pika.abc import AbstractQueue, AbstractRobustChannel
from aiormq.abc import AbstractChannel, DeliveredMessage
from pamqp import commands

log = logging.getLogger(__name__)
RETRY_SECONDS = 1.0
CONSUME_TIMEOUT = 10.0

OnDelivery = Callable[[DeliveredMessage], Coroutine[Any, Any, None]]


class Subscription:
    """One queue consumed on one robust channel, until ``cancel``."""

    def __init__(
        self, channel: AbstractRobustChannel, queue: AbstractQueue, on_delivery: OnDelivery
    ) -> None:
        self.tag = f"warren.{queue.name}.{uuid.uuid4().hex}"
        self._channel = channel
        self._queue = queue
        self._on_delivery = on_delivery
        self._on: AbstractChannel | None = None  # the channel our basic.consume is on
        self._lock = asyncio.Lock()
        self._wanted = asyncio.Event()
        self._redeclare = False  # the broker cancelled us: the queue may be gone
        self._stopped = False

    @property
    def consuming(self) -> bool:
        """Registered with the broker on an open channel (readiness)."""
        return self._on is not None and not self._on.is_closed and not self._stopped

    async def start(self) -> str:
        """Consume now (raising if the broker refuses); then keep consuming after reopens."""
        self._channel.reopen_callbacks.add(self._on_reopen)
        await self._consume()
        return self.tag

    async def keep(self) -> None:
        """Consume again whenever asked to (a reopen or cancel whose attempt failed); run it
        as a supervised background loop."""
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            try:
                await self._consume()
            except Exception as exc:  # retried: the channel may be reopening right now
                log.warning(
                    "consuming %s failed (%r); again in %ss", self._queue.name, exc, RETRY_SECONDS
                )
                await asyncio.sleep(RETRY_SECONDS)
                self._wanted.set()

    async def cancel(self) -> None:
        """Stop consuming (``basic.cancel``); deliveries already sent still arrive."""
        self._stopped = True
        self._channel.reopen_callbacks.discard(self._on_reopen)
        channel, self._on = self._on, None
        if channel is not None and not channel.is_closed:
            await channel.basic_cancel(self.tag)

    async def _consume(self) -> None:
        async with self._lock:
            if self._stopped:
                return
            channel = await self._channel.get_underlay_channel()
            if channel is self._on and not channel.is_closed:
                return  # consuming there already
            if self._redeclare:
                await self._queue.declare()
            channel.on_consumer_cancel_callbacks.add(self._on_cancel)
            await channel.basic_consume(
                self._queue.name, self._on_delivery, consumer_tag=self.tag, timeout=CONSUME_TIMEOUT
            )
            self._on, self._redeclare = channel, False
        log.debug("consuming %s as %s", self._queue.name, self.tag)

    async def _on_reopen(self, _: Any) -> None:
        self._on = None
        try:
            await self._consume()
        except Exception as exc:
            log.warning("consuming %s after a reopen failed (%r); retrying", self._queue.name, exc)
            self._wanted.set()

    def _on_cancel(self, frame: commands.Basic.Cancel) -> None:
        if frame.consumer_tag != self.tag or self._stopped:
            return
        log.warning("the broker cancelled the consumer of %s; consuming again", self._queue.name)
        self._on, self._redeclare = None, True
        self._wanted.set()
