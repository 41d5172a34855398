"""Many confirmed publishes written as one: a batch's frames marshalled once, one write.

``aiormq.Channel.basic_publish`` pays, per message, the channel lock, one item on
the connection's write queue (a queue of 10: the writer task must run every ten
messages), one ``socket.send`` and, unless ``wait=False``, a ``drain()`` awaited
under the lock. For a batch of hundreds of messages those hops cost more than the
broker. Here the frames of every message (``Basic.Publish``, content header, body)
are marshalled outside the lock into one buffer (the content header by
``wire.content_header``: pamqp's bytes at a fraction of the cost); under the lock
the messages take consecutive delivery tags, each registered in the channel's
``confirmations`` and ``message_id_delivery_tag`` as ``basic_publish`` registers them
(with one watch per batch for a closing channel: ``Written``), and the buffer goes on
the write queue as one ``ChannelFrame``. The
broker sees the same frames in the same order as from ``basic_publish`` called once
per message, so its acks, nacks (``Basic.Nack``) and returns (``Basic.Return``,
matched to a publish by ``message_id``) land on the right message's future through
aiormq's own handlers.

This uses aiormq internals. Written against **aiormq 7.2.4** (aio-pika 10.2, pamqp
4.0): the channel's ``lock``, ``delivery_tag``, ``confirmations``,
``message_id_delivery_tag``, ``write_queue``, ``number``, ``max_content_size``,
``publisher_confirms``, ``create_future`` and ``aiormq.abc.ChannelFrame``.
``supported`` checks them on a live channel; where it says no, callers publish
message by message through the public ``basic_publish``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pamqp.frame
from aiormq import spec
from aiormq.abc import ChannelFrame

from warren.service.errors import PublishError
from warren.service.wire.content_header import FRAME, FRAME_END, content_header_frame

WRITTEN_AGAINST = "aiormq 7.2.4"
FRAME_BODY = 3  # AMQP frame type of a content body
CHANNEL_ATTRIBUTES = (
    "lock",
    "delivery_tag",
    "confirmations",
    "message_id_delivery_tag",
    "write_queue",
    "number",
    "max_content_size",
    "publisher_confirms",
    "create_future",
)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message of a batch: where it goes, and what it is."""

    exchange: str
    routing_key: str
    body: bytes
    properties: spec.Basic.Properties
    mandatory: bool = True
    # ``properties`` encoded already, as ``content_header`` would (``wire.task_header``)
    encoded: tuple[int, bytes] | None = None


def supported(channel: Any) -> bool:
    """Whether ``channel`` (an ``aiormq.Channel``) has what a coalesced publish relies on,
    with confirms on: checked on the live channel, so an aiormq upgrade that moves any of
    it makes the publisher fall back to ``basic_publish`` instead of failing."""
    if not all(hasattr(channel, name) for name in CHANNEL_ATTRIBUTES):
        return False
    return (
        channel.publisher_confirms is True
        and isinstance(channel.delivery_tag, int)
        and isinstance(channel.confirmations, dict)
        and isinstance(channel.message_id_delivery_tag, dict)
        and isinstance(channel.write_queue, asyncio.Queue)
        and {"payload", "should_close", "drain_future"} <= set(ChannelFrame.__annotations__)
    )


def marshal(channel_number: int, max_content_size: int, batch: Sequence[Outgoing]) -> bytes:
    """The frames of every message, in order: what ``basic_publish`` would write for each.
    A message without ``message_id`` is refused: a return is matched to its publish by it."""
    publish_frames: dict[tuple[str, str, bool], bytes] = {}
    parts: list[bytes] = []
    for message in batch:
        if not message.properties.message_id:
            raise ValueError("a coalesced publish needs a message_id per message")
        route = (message.exchange, message.routing_key, message.mandatory)
        if (publish := publish_frames.get(route)) is None:
            exchange, key, mandatory = route
            command = spec.Basic.Publish(exchange=exchange, routing_key=key, mandatory=mandatory)
            publish = publish_frames[route] = pamqp.frame.marshal(command, channel_number)
        parts.append(publish)
        body, properties = message.body, message.properties
        parts.append(content_header_frame(properties, len(body), channel_number, message.encoded))
        for start in range(0, len(body), max_content_size):
            chunk = body[start : start + max_content_size]
            parts += (FRAME.pack(FRAME_BODY, channel_number, len(chunk)), chunk, FRAME_END)
    return b"".join(parts)


async def publish(channel: Any, batch: Sequence[Outgoing]) -> list[asyncio.Future[Any]]:
    """Write every message of ``batch`` in one go; their confirms, in the batch's order.

    Returns once the frames are written to the socket (the writer's drain: back
    pressure, as ``basic_publish(wait=True)`` has, once per batch). Each future ends as
    aiormq ends a publish's confirmation: ``Basic.Ack``, ``DeliveryError`` (nack),
    ``PublishError`` (returned), or the channel's error when it is closed or lost.
    """
    payload = marshal(channel.number, channel.max_content_size, batch)
    drain: asyncio.Future[None] = channel.create_future()
    async with channel.lock:
        first = channel.delivery_tag + 1
        written = Written(channel, first, [str(m.properties.message_id) for m in batch])
        channel.delivery_tag += len(batch)
        frame = ChannelFrame(payload=payload, should_close=False, drain_future=drain)
        try:
            await channel.write_queue.put(frame)
        except BaseException:
            written.unregister()  # the broker has not seen the batch: its tags are free again
            drain.cancel()
            raise
    with contextlib.suppress(Exception):  # the connection is lost: each confirm fails with it
        await drain
    return written.confirms


class Written:
    """The confirms of one batch, registered as ``basic_publish`` registers one message's:
    each under its delivery tag in ``confirmations``, its message id's tag in
    ``message_id_delivery_tag`` (for returns; forgotten once confirmed, unless reused).

    ``basic_publish`` makes each confirmation a future of the channel's store, which the
    channel rejects with its error when it closes — at the price of three callbacks per
    message. Here one store future watches the whole batch: rejected, it fails every
    confirm still pending with the same error; once all are settled, it is resolved and
    leaves the store.
    """

    def __init__(self, channel: Any, first: int, message_ids: list[str]) -> None:
        self.channel, self.first, self.message_ids = channel, first, message_ids
        loop = asyncio.get_running_loop()
        self.confirms: list[asyncio.Future[Any]] = [loop.create_future() for _ in message_ids]
        self.left = len(message_ids)
        self.watch: asyncio.Future[None] = channel.create_future()
        tags, confirmations = channel.message_id_delivery_tag, channel.confirmations
        for offset, confirm in enumerate(self.confirms):
            confirmations[first + offset] = confirm
            tags[message_ids[offset]] = first + offset
            confirm.add_done_callback(functools.partial(self._settled, offset))
        self.watch.add_done_callback(self._closed)

    def _settled(self, offset: int, _: asyncio.Future[Any]) -> None:
        tags, message_id = self.channel.message_id_delivery_tag, self.message_ids[offset]
        if tags.get(message_id) == self.first + offset:
            tags.pop(message_id)
        self.left -= 1
        if not self.left and not self.watch.done():
            self.watch.set_result(None)

    def _closed(self, watch: asyncio.Future[None]) -> None:
        if watch.cancelled() or (error := watch.exception()) is None:
            return
        for confirm in self.confirms:
            if not confirm.done():
                confirm.set_exception(error)

    def unregister(self) -> None:
        """Give the batch's delivery tags back (still under the lock) and cancel it."""
        self.channel.delivery_tag = self.first - 1
        for offset, confirm in enumerate(self.confirms):
            self.channel.confirmations.pop(self.first + offset, None)
            confirm.cancel()  # its callback forgets its message id
        self.watch.cancel()


Confirms = Callable[[Sequence[Outgoing]], Awaitable[list[asyncio.Future[None]]]]


class Gathered:
    """Single publishes started in one turn of the loop, written together as one batch.

    Each request of the gateway publishes one task, and ``basic_publish`` costs each the
    channel lock, a timeout, pamqp's encoding and a write of its own. Here a publish joins
    a list and the first one of a loop turn schedules a flush: the next turn writes the
    whole list through ``send`` (``Publisher.send_batch``, one write), and what arrives
    while that write waits (the lock, the socket's drain) goes in the following one. No
    message waits longer than it would for the channel's lock; an idle gateway's batch is
    one message. A publish whose caller gave up before its batch was written (its future
    cancelled: a timeout) is left out, never written: its outcome is then certainly "not
    published" rather than unknown.
    """

    def __init__(self, send: Confirms) -> None:
        self._send = send
        self._waiting: list[tuple[Outgoing, asyncio.Future[None]]] = []
        self._flushing: asyncio.Task[None] | None = None

    def send(self, message: Outgoing) -> asyncio.Future[None]:
        """Publish ``message`` with the others of this loop turn; the future is its confirm."""
        loop = asyncio.get_running_loop()
        confirm: asyncio.Future[None] = loop.create_future()
        self._waiting.append((message, confirm))
        if self._flushing is None:
            self._flushing = loop.create_task(self._flush())
        return confirm

    async def _flush(self) -> None:
        try:
            while self._waiting:
                batch = [(m, c) for m, c in self._waiting if not c.done()]
                self._waiting = []
                if batch:
                    await self._write(batch)
        finally:
            self._flushing = None

    async def _write(self, batch: list[tuple[Outgoing, asyncio.Future[None]]]) -> None:
        try:
            confirms = await self._send([message for message, _ in batch])
        except BaseException as exc:  # a bug, or cancelled at shutdown: each caller is told
            told = exc if isinstance(exc, Exception) else _interrupted(exc)
            for _, confirm in batch:
                if not confirm.done():
                    confirm.set_exception(told)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, mine), theirs in zip(batch, confirms, strict=True):
            theirs.add_done_callback(functools.partial(_settle, mine))


def _interrupted(exc: BaseException) -> PublishError:
    """What a caller whose batch's write was cut short (a shutdown) is told: the outcome is
    unknown (part of the batch may be on the socket), as for a publish that timed out."""
    return PublishError(f"the write of its batch was interrupted ({type(exc).__name__}; unknown)")


def _settle(mine: asyncio.Future[None], theirs: asyncio.Future[None]) -> None:
    """``mine`` ends as ``theirs`` did (unless its caller gave up on it already)."""
    if mine.done():
        return
    if theirs.cancelled():
        mine.cancel()
    elif (exc := theirs.exception()) is not None:
        mine.set_exception(exc)
    else:
        mine.set_result(None)
