"""``Publisher.send_batch``: one confirm per message, each with the outcome of its own
message (ack, nack → ``QueueFull``, return → unroutable ``PublishError``), whether the
batch is written as one (``coalesced``) or message by message; and the properties the
batch builds directly are the envelope's, byte for byte."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pamqp.frame
import pytest
from aio_pika import connect_robust
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from aiormq import spec
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from tests.conftest import BROKER_URL, make_settings
from tests.support import TcpProxy, drain
from tests.test_envelope import sample_envelope
from warren.service import coalesced, topology
from warren.service.amqp import Publisher
from warren.service.coalesced import Outgoing
from warren.service.errors import PublishError, QueueFull
from warren.service.settings import Settings
from warren.service.wire import Envelope
from warren.service.wire.content_header import content_header_frame

MAX_LENGTH = 3


def outgoing(envelope: Envelope, routing_key: str, exchange: str) -> Outgoing:
    return Outgoing(exchange, routing_key, envelope.body, envelope.to_properties())


async def outcomes(confirms: list[asyncio.Future[None]]) -> list[str]:
    """Each confirm as "ack", "full" (``QueueFull``) or "unroutable"."""
    await asyncio.wait(confirms, timeout=10)
    said = []
    for confirm in confirms:
        exc = confirm.exception()
        if exc is None:
            said.append("ack")
        elif isinstance(exc, QueueFull):
            said.append("full")
        else:
            assert isinstance(exc, PublishError) and "unroutable" in str(exc), exc
            said.append("unroutable")
    return said


@pytest.mark.parametrize("coalesce", [True, False], ids=["coalesced", "per-message"])
async def test_acks_nacks_and_returns_each_reach_their_own_message(
    connection: AbstractRobustConnection,
    channel: AbstractChannel,
    settings: Settings,
    coalesce: bool,
) -> None:
    # Given a work queue that holds 3 messages and refuses more (reject-publish)
    bounded = make_settings(namespace=settings.namespace, max_queue_length=MAX_LENGTH)
    publisher = await Publisher.open(connection, topology.build(bounded, ["diag"]), 5.0)
    assert publisher.coalesces  # this aiormq is the one the coalesced publish knows
    publisher.coalesces = coalesce
    exchange = publisher.work_exchange
    # When one batch holds 5 tasks for it, with 2 unroutable ones between them
    envelopes = [sample_envelope(body=f'"{i}"'.encode()) for i in range(7)]
    keys = ["diag", "nowhere", "diag", "diag", "nowhere", "diag", "diag"]
    confirms = await publisher.send_batch(
        [outgoing(e, key, exchange) for e, key in zip(envelopes, keys, strict=True)]
    )
    # Then the first 3 are confirmed, the unroutable returned, the last 2 refused (nack)
    said = await outcomes(confirms)
    assert said == ["ack", "unroutable", "ack", "ack", "unroutable", "full", "full"]
    # and the queue holds exactly the confirmed ones, in order
    queue = await channel.get_queue(publisher.names.work_queue("diag"), ensure=False)
    taken = await drain(queue, MAX_LENGTH)
    assert [m.message_id for m in taken] == [envelopes[i].id for i in (0, 2, 3)]
    assert [Envelope.from_delivery(m) for m in taken] == [envelopes[i] for i in (0, 2, 3)]


@pytest.mark.parametrize("coalesce", [True, False], ids=["coalesced", "per-message"])
async def test_without_a_broker_every_confirm_fails_with_a_publish_error(
    settings: Settings, coalesce: bool
) -> None:
    publisher = Publisher(topology.build(settings, ["diag"]), 5.0)
    publisher.coalesces = coalesce
    batch = [outgoing(sample_envelope(), "diag", publisher.work_exchange) for _ in range(3)]
    confirms = await publisher.send_batch(batch)
    await asyncio.wait(confirms, timeout=5)
    errors = [confirm.exception() for confirm in confirms]
    assert all(isinstance(e, PublishError) and "not connected" in str(e) for e in errors)


async def test_a_connection_lost_under_a_batch_fails_its_unconfirmed_publishes(
    channel: AbstractChannel, settings: Settings
) -> None:
    # Given a publisher connected through a proxy that can be cut, and a batch written
    proxy = TcpProxy("127.0.0.1", 5672)
    await proxy.start()
    own = await connect_robust(BROKER_URL.replace(":5672", f":{proxy.port}"))
    try:
        publisher = await Publisher.open(own, topology.build(settings, ["diag"]), 5.0)
        envelopes = [sample_envelope() for _ in range(2000)]
        confirms = await publisher.send_batch(
            [outgoing(e, "diag", publisher.work_exchange) for e in envelopes]
        )
        # When the connection is cut before all are confirmed
        await proxy.cut()
        await asyncio.wait(confirms, timeout=10)
    finally:
        await own.close()
    # Then every confirm has ended, confirmed or with a PublishError, nothing else
    assert all(confirm.done() for confirm in confirms)
    errors = [confirm.exception() for confirm in confirms]
    assert all(e is None or isinstance(e, PublishError) for e in errors), set(map(type, errors))
    assert any(e is not None for e in errors)


async def test_supported_on_a_confirming_aiormq_channel_only(
    connection: AbstractRobustConnection,
) -> None:
    confirming = await connection.channel(publisher_confirms=True)
    plain = await connection.channel(publisher_confirms=False)
    assert coalesced.supported(await confirming.get_underlay_channel())
    assert not coalesced.supported(await plain.get_underlay_channel())
    assert not coalesced.supported(object())


@pytest.mark.parametrize(
    "changes",
    [{}, {"traceparent": None, "tracestate": None, "submitter": None, "priority": 0}],
    ids=["full", "bare"],
)
def test_properties_built_directly_are_the_messages_on_the_wire(changes: dict[str, Any]) -> None:
    envelope = sample_envelope(**changes)

    def wire(properties: Any) -> bytes:
        return pamqp.frame.marshal(ContentHeader(0, len(envelope.body), properties), 1)

    assert wire(envelope.to_properties()) == wire(envelope.to_message().properties)


def test_a_message_without_id_is_refused_before_anything_is_written() -> None:
    envelope = sample_envelope()
    properties = envelope.to_properties()
    properties.message_id = None
    with pytest.raises(ValueError, match="message_id"):
        coalesced.marshal(1, 131072, [Outgoing("x", "diag", envelope.body, properties)])


@pytest.mark.parametrize(
    "properties",
    [
        spec.Basic.Properties(),
        spec.Basic.Properties(headers={}, priority=0, content_type=""),
        spec.Basic.Properties(
            message_id="é" * 10,
            timestamp=datetime(2026, 1, 2, 3, 4, 5, 999999),  # naive: pamqp reads it as UTC
            headers={"b": True, "n": -129, "u": 40000, "big": 2**40, "s": "ü", "f": False},
            user_id="guest",
            expiration="1000",
        ),
        spec.Basic.Properties(headers={"x": 1.5}),  # a float: left to pamqp
        spec.Basic.Properties(headers={"k" * 200: 1}),  # a key pamqp truncates: left to it
    ],
    ids=["empty", "falsy", "varied", "float", "long-key"],
)
def test_content_headers_are_pamqps_bytes(properties: spec.Basic.Properties) -> None:
    assert content_header_frame(properties, 12345, 7) == pamqp.frame.marshal(
        ContentHeader(0, 12345, properties), 7
    )


def test_a_batchs_frames_are_basic_publishs_frames() -> None:
    envelopes = [sample_envelope(body=b"x" * 300), sample_envelope(submitter=None)]
    batch = [outgoing(e, "diag", "ex") for e in envelopes]
    frames: list[spec.Basic.Publish | ContentHeader | ContentBody] = []
    for e in envelopes:
        frames.append(spec.Basic.Publish(exchange="ex", routing_key="diag", mandatory=True))
        frames.append(ContentHeader(0, len(e.body), e.to_properties()))
        frames += [ContentBody(e.body[i : i + 128]) for i in range(0, len(e.body), 128)]
    expected = b"".join(pamqp.frame.marshal(frame, 5) for frame in frames)
    assert coalesced.marshal(5, 128, batch) == expected
