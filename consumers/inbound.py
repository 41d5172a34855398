"""A delivery as the broker handed it: aiormq's frame, read on demand, settled on its channel.

The consumer takes its deliveries from aiormq directly
(``warren.consumers.subscription``), not through aio-pika's queue consumer,
which copies fourteen properties into an ``IncomingMessage`` through a checking
``__setattr__`` and runs each callback in a second asyncio task. Here a
delivery keeps the frame's properties as pamqp decoded them and reads one only
when asked; its callback runs in the task aiormq starts for it.

Acks, nacks and rejects go to the channel the delivery came on, and return once written. After a
reconnect that channel is closed and its delivery tags are void: the client
library refuses the call (``ChannelInvalidStateError``), and the broker has
already requeued the delivery.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiormq.abc import AbstractChannel, DeliveredMessage
from pamqp import commands


class Delivery:
    """One delivery of a work queue: what ``Delivered`` names, its tag and its channel."""

    __slots__ = (
        "body",
        "channel",
        "delivery_tag",
        "headers",
        "properties",
        "redelivered",
        "routing_key",
    )

    def __init__(self, message: DeliveredMessage) -> None:
        deliver = message.delivery
        assert isinstance(deliver, commands.Basic.Deliver), "a consumer gets Basic.Deliver"
        self.channel: AbstractChannel = message.channel
        self.delivery_tag: int = deliver.delivery_tag or 0
        self.redelivered: bool = bool(deliver.redelivered)
        self.routing_key: str = deliver.routing_key or ""
        self.body: bytes = message.body
        self.properties: commands.Basic.Properties = message.header.properties
        self.headers: dict[str, Any] = self.properties.headers or {}

    @property
    def message_id(self) -> str | None:
        return self.properties.message_id

    @property
    def type(self) -> str | None:
        return self.properties.message_type

    @property
    def content_type(self) -> str | None:
        return self.properties.content_type

    @property
    def content_encoding(self) -> str | None:
        return self.properties.content_encoding

    @property
    def delivery_mode(self) -> int | None:
        return self.properties.delivery_mode

    @property
    def priority(self) -> int | None:
        return self.properties.priority

    @property
    def correlation_id(self) -> str | None:
        return self.properties.correlation_id

    @property
    def reply_to(self) -> str | None:
        return self.properties.reply_to

    @property
    def timestamp(self) -> datetime | None:
        return self.properties.timestamp

    @property
    def app_id(self) -> str | None:
        return self.properties.app_id

    async def ack(self, multiple: bool = False) -> None:
        """Return once the ack is written to the connection: a frame only queued is dropped
        if the connection closes first (a stop would then redeliver finished work). Acks are
        coalesced, so this waits once per many deliveries."""
        await self.channel.basic_ack(self.delivery_tag, multiple=multiple)

    async def nack(self, requeue: bool = True) -> None:
        await self.channel.basic_nack(self.delivery_tag, requeue=requeue)

    async def reject(self, requeue: bool = False) -> None:
        await self.channel.basic_reject(self.delivery_tag, requeue=requeue)
