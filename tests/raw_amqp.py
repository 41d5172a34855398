"""A minimal AMQP 0-9-1 publisher over a raw socket, for messages no client library will send.

aio-pika (through pamqp) refuses to encode what a consumer's own stack then
cannot decode: a ``timestamp`` beyond the year 9999, a ``delivery_mode`` other
than 1 or 2, a header name that is not UTF-8. Other publishers (other
languages, a hand-written one) send them, and RabbitMQ passes them on as they
are. This publisher writes the frames itself: pamqp marshals the method frames
(``Connection.*``, ``Channel.Open``, ``Confirm.Select``, ``Basic.Publish``) and the
content header is assembled here, property by property, from raw bytes where
the test wants a value pamqp would refuse. The publish is confirmed, like
Warren's own.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
from pamqp import body as content
from pamqp import commands, encode, frame, header
from pamqp.base import Frame

from warren.service.wire import Envelope

PROPERTY_ORDER = tuple(commands.Basic.Properties.flags)
FRAME_HEADER, FRAME_END = 2, b"\xce"


@dataclass(frozen=True)
class Raw:
    """A property value given as its encoded bytes, sent as it is."""

    encoded: bytes


def raw_timestamp(seconds: int) -> Raw:
    """A ``timestamp`` property of any 64-bit value (pamqp encodes only real datetimes)."""
    return Raw(struct.pack(">Q", seconds))


def raw_table(entries: Mapping[bytes, bytes]) -> Raw:
    """A field table of raw ``name → type byte + value`` entries (names need not be UTF-8)."""
    body = b"".join(struct.pack(">B", len(k)) + k + v for k, v in entries.items())
    return Raw(struct.pack(">I", len(body)) + body)


def table_with(headers: Mapping[str, Any], raw: Mapping[bytes, bytes]) -> Raw:
    """``headers`` encoded by pamqp, plus ``raw`` entries (name → type byte + value) as given."""
    entries = {k.encode(): encode.encode_table_value(v) for k, v in headers.items()}
    return raw_table({**entries, **raw})


def properties_of(message: aio_pika.Message | Envelope, **changes: Any) -> dict[str, Any]:
    """The properties ``message`` (or the envelope's) would be published with, as
    ``content_header`` takes them, with ``changes`` (``Raw`` values, or ``None`` to leave a
    property out)."""
    if isinstance(message, Envelope):
        message = message.to_message()
    properties = message.properties
    values = {name: getattr(properties, name) for name in PROPERTY_ORDER}
    values = {name: value for name, value in values.items() if value not in (None, "")}
    return {**values, **changes}


def content_header(body_size: int, properties: Mapping[str, Any]) -> bytes:
    """The payload of a content header frame: class, weight, body size, flags, properties.

    ``properties`` are named as in ``pamqp.commands.Basic.Properties``; each value is
    encoded by pamqp for its AMQP type, unless it is ``Raw``.
    """
    flags, parts = 0, []
    for name in PROPERTY_ORDER:
        if (value := properties.get(name)) is None:
            continue
        flags |= commands.Basic.Properties.flags[name]
        if isinstance(value, Raw):
            parts.append(value.encoded)
        else:
            parts.append(encode.by_type(value, commands.Basic.Properties.amqp_type(name)))
    return struct.pack(">HHQH", 60, 0, body_size, flags) + b"".join(parts)


class RawPublisher:
    """One connection, one confirming channel; ``publish`` returns once the broker acks."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._tag = 0

    @classmethod
    async def connect(cls, url: str) -> RawPublisher:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 5672)
        publisher = cls(reader, writer)
        await publisher._handshake(
            unquote(parts.username or "guest"),
            unquote(parts.password or "guest"),
            unquote(parts.path[1:]) or "/",
        )
        return publisher

    async def _handshake(self, user: str, password: str, vhost: str) -> None:
        self._writer.write(frame.marshal(header.ProtocolHeader(), 0))
        await self._expect(commands.Connection.Start)
        self._send(0, commands.Connection.StartOk(response=f"\0{user}\0{password}"))
        tune = await self._expect(commands.Connection.Tune)
        assert isinstance(tune, commands.Connection.Tune)
        self._send(0, commands.Connection.TuneOk(tune.channel_max, tune.frame_max, 0))
        self._send(0, commands.Connection.Open(vhost))
        await self._expect(commands.Connection.OpenOk)
        self._send(1, commands.Channel.Open())
        await self._expect(commands.Channel.OpenOk)
        self._send(1, commands.Confirm.Select())
        await self._expect(commands.Confirm.SelectOk)

    async def publish(
        self, exchange: str, routing_key: str, body: bytes, properties: Mapping[str, Any]
    ) -> None:
        """Publish (mandatory) and wait for the broker's confirm; a nack or return fails."""
        self._send(1, commands.Basic.Publish(exchange=exchange, routing_key=routing_key))
        self._write(1, FRAME_HEADER, content_header(len(body), properties))
        if body:
            self._writer.write(frame.marshal(content.ContentBody(body), 1))
        self._tag += 1
        ack = await self._expect(commands.Basic.Ack)
        assert isinstance(ack, commands.Basic.Ack) and ack.delivery_tag == self._tag

    async def close(self) -> None:
        self._send(0, commands.Connection.Close(200, "done", 0, 0))
        await self._expect(commands.Connection.CloseOk)
        self._writer.close()
        await self._writer.wait_closed()

    def _send(self, channel: int, method: Frame) -> None:
        self._writer.write(frame.marshal(method, channel))

    def _write(self, channel: int, frame_type: int, payload: bytes) -> None:
        self._writer.write(
            struct.pack(">BHI", frame_type, channel, len(payload)) + payload + FRAME_END
        )

    async def _expect(self, kind: type[Frame]) -> Frame:
        head = await self._reader.readexactly(7)
        _, _, size = struct.unpack(">BHI", head)
        data = head + await self._reader.readexactly(size + 1)
        _, _, received = frame.unmarshal(data)
        if not isinstance(received, kind):
            detail = [getattr(received, name, None) for name in getattr(received, "__slots__", [])]
            raise AssertionError(f"expected {kind.__name__}, got {received!r}: {detail}")
        assert isinstance(received, Frame)
        return received


async def publish_raw(
    url: str, exchange: str, routing_key: str, body: bytes, properties: Mapping[str, Any]
) -> None:
    """Publish one message as it is given, confirmed, on a connection of its own."""
    publisher = await RawPublisher.connect(url)
    try:
        await publisher.publish(exchange, routing_key, body, properties)
    finally:
        await publisher.close()
