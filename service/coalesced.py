"""Many confirmed publishes written as one: a batch's frames marshalled once, one write.

``aiormq.Channel.basic_publish`` pays, per message, the channel lock, one item on
the connection's write queue (a queue of 10: the writer task must run every ten
messages), one ``socket.send`` and, unless ``wait=False``, a ``drain()`` awaited
under the lock. For a batch of hundreds of messages those hops cost more than the
broker. Here the frames of every message (``Basic.Publish``, content header, body)
are marshalled outside the lock into one buffer (the content header by
``wire.content_header``: pamqp's bytes at a fraction of the cost); under the lock
the messages take consecutive delivery tags, each registered in the channel's
``confirmations`` and ``message_id_delivery_tag`` exactly as ``basic_publish``
registers them, and the buffer goes on the write queue as one ``ChannelFrame``. The
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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pamqp.frame
from aiormq import spec
from aiormq.abc import ChannelFrame

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
        body = message.body
        parts.append(content_header_frame(message.properties, len(body), channel_number))
        for start in range(0, len(body), max_content_size):
            chunk = body[start : start + max_content_size]
            parts += (FRAME.pack(FRAME_BODY, channel_number, len(chunk)), chunk, FRAME_END)
    return b"".join(parts)


async def publish(channel: Any, batch: Sequence[Outgoing]) -> list[asyncio.Future[Any]]:
    """Write every message of ``batch`` in one go; their confirms, in the batch's order.

    Returns once the frames are written to the socket (the writer's drain: back
    pressure, as ``basic_publish(wait=True)`` has, once per batch). Each future ends as
    aiormq ends a publish's confirmation: ``Basic.Ack``, ``DeliveryError`` (nack),
    ``PublishError`` (returned), or the connection's error when it is lost.
    """
    payload = marshal(channel.number, channel.max_content_size, batch)
    drain: asyncio.Future[None] = channel.create_future()
    async with channel.lock:
        first = channel.delivery_tag + 1
        confirms = [
            _register(channel, first + offset, str(message.properties.message_id))
            for offset, message in enumerate(batch)
        ]
        channel.delivery_tag += len(batch)
        frame = ChannelFrame(payload=payload, should_close=False, drain_future=drain)
        try:
            await channel.write_queue.put(frame)
        except BaseException:
            _unregister(channel, first, confirms)
            drain.cancel()
            raise
    with contextlib.suppress(Exception):  # the connection is lost: each confirm fails with it
        await drain
    return confirms


def _register(channel: Any, tag: int, message_id: str) -> asyncio.Future[Any]:
    """What ``basic_publish`` does per message: a confirmation under its delivery tag, and
    the message id's tag for returns (forgotten once confirmed, unless reused since)."""
    confirmation: asyncio.Future[Any] = channel.create_future()
    channel.confirmations[tag] = confirmation
    channel.message_id_delivery_tag[message_id] = tag
    tags = channel.message_id_delivery_tag

    def forget(_: asyncio.Future[Any]) -> None:
        if tags.get(message_id) == tag:
            tags.pop(message_id)

    confirmation.add_done_callback(forget)
    return confirmation


def _unregister(channel: Any, first: int, confirms: list[asyncio.Future[Any]]) -> None:
    """The broker has not seen the batch: give its delivery tags back, still under the lock."""
    channel.delivery_tag = first - 1
    for offset, confirm in enumerate(confirms):
        channel.confirmations.pop(first + offset, None)
        confirm.cancel()  # its done callback forgets its message id
