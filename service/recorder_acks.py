"""The recorder's acks: after its batch is written, each delivery acked once, as few frames
as the channel allows.

One ``multiple`` ack per channel acks every delivery up to the newest of the
batch, so it is sent only when no older delivery of that channel is still
pending (not written yet); otherwise that channel's deliveries are acked one
by one. A delivery whose channel has closed since (a broker restart, a lost
connection) cannot be acked and need not be: the broker redelivers it on the
new channel and the merge is idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError

from warren.service.recorder_items import Item

log = logging.getLogger("warren.service.recorder")


async def ack_written(batch: Sequence[Item], pending: Sequence[Item]) -> None:
    """Ack the deliveries of ``batch`` (written); ``pending`` are those not written yet.

    Never raises: a raise would stop the writer, and with it every record.
    """
    live = [
        item.delivery
        for item in batch
        if item.delivery is not None and _channel_key(item.delivery) is not None
    ]
    newest: dict[int, AbstractIncomingMessage] = {}
    for delivery in live:
        key = _channel_key(delivery)
        if key is None:
            continue
        if (seen := newest.get(key)) is None or _tag(seen) < _tag(delivery):
            newest[key] = delivery
    singles: list[AbstractIncomingMessage] = []
    for key, delivery in list(newest.items()):
        if any(_older_on(p.delivery, key, delivery) for p in pending):
            singles += [d for d in live if _channel_key(d) == key]
            del newest[key]
    for delivery in newest.values():
        await _ack_quietly(delivery, multiple=True)
    for delivery in singles:
        await _ack_quietly(delivery, multiple=False)


def _tag(delivery: AbstractIncomingMessage) -> int:
    return delivery.delivery_tag or 0


def _channel_key(delivery: AbstractIncomingMessage | None) -> int | None:
    """Which channel a delivery came on; ``None`` for the gateway's own writes and for a
    delivery whose channel has closed (aio-pika raises on ``.channel`` then)."""
    if delivery is None:
        return None
    try:
        return id(delivery.channel)
    except ChannelInvalidStateError:
        return None


async def _ack_quietly(delivery: AbstractIncomingMessage, *, multiple: bool) -> None:
    """Ack; a channel that closes meanwhile means the broker redelivers, which is harmless."""
    try:
        await delivery.ack(multiple=multiple)
    except (AMQPError, ChannelInvalidStateError, RuntimeError) as exc:
        log.info("recorder: ack not sent (%r); the broker redelivers those events", exc)


def _older_on(
    delivery: AbstractIncomingMessage | None, channel_key: int, newest: AbstractIncomingMessage
) -> bool:
    return (
        delivery is not None
        and _channel_key(delivery) == channel_key
        and _tag(delivery) < _tag(newest)
    )
