"""The envelope survives a real trip through the broker, and bad ones are refused precisely."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel

from warren.service.errors import DecodeError
from warren.service.store.model import new_task_id
from warren.service.wire.envelope import (
    H_ATTEMPT,
    H_TRACEPARENT,
    H_VERSION,
    MAX_TEXT_HEADER,
    Envelope,
    bounded,
)

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def sample_envelope(**changes: Any) -> Envelope:
    values: dict[str, Any] = {
        "id": new_task_id(),
        "type": "diag.echo",
        "queue": "diag",
        "body": b'{"message":"hi \xc3\xa9"}',
        "attempt": 1,
        "max_attempts": 5,
        "timeout_seconds": 2.5,
        "created_at": datetime(2026, 11, 25, 8, 0, 0, 123456, tzinfo=UTC),
        "priority": 3,
        "traceparent": TRACEPARENT,
        "tracestate": "vendor=abc",
        "submitter": "client-1",
    }
    values.update(changes)
    return Envelope(**values)


async def round_trip(channel: AbstractChannel, message: aio_pika.Message) -> Envelope:
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await channel.default_exchange.publish(message, routing_key=queue.name)
    delivery = await queue.get(timeout=5)
    await delivery.ack()
    return Envelope.from_delivery(delivery)


async def test_round_trip_through_the_broker_keeps_every_field(channel: AbstractChannel) -> None:
    original = sample_envelope()
    assert await round_trip(channel, original.to_message()) == original


async def test_next_attempt_keeps_identity_and_trace(channel: AbstractChannel) -> None:
    second = sample_envelope().next_attempt()
    decoded = await round_trip(channel, second.to_message())
    assert decoded.attempt == 2 and decoded.id == second.id
    assert decoded.trace_id == "0af7651916cd43dd8448eb211c80319c"


async def test_malformed_trace_context_is_dropped_not_an_error(channel: AbstractChannel) -> None:
    message = sample_envelope().to_message()
    message.headers[H_TRACEPARENT] = "00-zzzz-not-a-trace"
    decoded = await round_trip(channel, message)
    assert decoded.traceparent is None and decoded.trace_id is None


@pytest.mark.parametrize(
    ("header", "value", "reason"),
    [
        (H_VERSION, 2, "unsupported-version"),
        (H_VERSION, None, "missing-header"),
        (H_ATTEMPT, "1", "bad-header"),
        (H_ATTEMPT, 9, "bad-header"),
    ],
)
async def test_bad_headers_are_refused_with_a_reason(
    channel: AbstractChannel, header: str, value: object, reason: str
) -> None:
    message = sample_envelope().to_message()
    if value is None:
        del message.headers[header]
    else:
        message.headers[header] = value  # type: ignore[assignment]
    with pytest.raises(DecodeError) as caught:
        await round_trip(channel, message)
    assert caught.value.reason == reason


def test_bounded_caps_text_copied_into_headers() -> None:
    assert len(bounded("x" * 100_000)) == MAX_TEXT_HEADER
    assert bounded("short") == "short"
