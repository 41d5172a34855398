"""The event batch format as the README documents it, read back by the one decoding helper.

The encoders against what subscribers of ``<ns>.events`` rely on (routing key,
headers, a JSON array of the same event objects), a trip through the real
broker (header types survive it), and the decoders: a batch in one validation,
a single event of an older consumer, and a malformed event costing only itself.
"""

from __future__ import annotations

from typing import Any

import aio_pika
import orjson
import pytest
from aio_pika.abc import AbstractChannel

from tests.test_envelope import sample_envelope
from warren.client import lifecycle_events
from warren.service.errors import DecodeError
from warren.service.store.model import Change, Status
from warren.service.wire import (
    decode_events,
    encode_event,
    event_batch,
    event_message,
    event_objects,
    events_in,
    task_change,
)
from warren.service.wire.batches import H_EVENTS, H_EVENTS_VERSION


def succeeded(n: int) -> list[Change]:
    return [
        task_change(sample_envelope(), Status.SUCCEEDED, worker="w", result={"n": i})
        for i in range(n)
    ]


def test_a_batch_is_a_json_array_of_events_under_one_routing_key() -> None:
    changes = succeeded(3)
    batch = event_batch("diag.succeeded", [encode_event(c) for c in changes])

    assert batch.routing_key == "diag.succeeded"
    assert batch.properties.headers == {H_EVENTS_VERSION: 1, H_EVENTS: 3}
    assert batch.properties.message_type == "warren.events"
    assert batch.properties.delivery_mode == 2
    assert batch.properties.content_type == "application/json"
    body = orjson.loads(batch.body)
    assert [e["task_id"] for e in body] == [c.task_id for c in changes]
    assert body[0] == orjson.loads(event_message(changes[0]).body)  # the same event object


def test_a_batch_decodes_to_the_changes_it_was_built_from() -> None:
    changes = succeeded(5)
    batch = event_batch("diag.succeeded", [encode_event(c) for c in changes])

    decoded = decode_events(batch.body, batch.properties.headers)
    assert decoded.changes == changes and decoded.errors == []
    assert events_in(batch.properties.headers) == 5


def test_a_single_event_of_an_older_consumer_still_decodes() -> None:
    [change] = succeeded(1)
    single = event_message(change)

    assert decode_events(single.body, single.properties.headers).changes == [change]
    assert event_objects(single.body, None) == [orjson.loads(single.body)]
    assert events_in(single.properties.headers) == 1


def test_one_malformed_event_costs_only_itself() -> None:
    good = succeeded(2)
    bad = orjson.dumps({"task_id": "nope", "status": "exploded"})
    batch = event_batch("diag.succeeded", [encode_event(good[0]), bad, encode_event(good[1])])

    decoded = decode_events(batch.body, batch.properties.headers)
    assert decoded.changes == good
    assert len(decoded.errors) == 1


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"not json", {H_EVENTS_VERSION: 1, H_EVENTS: 1}),
        (b'{"task_id": "x"}', {H_EVENTS_VERSION: 1, H_EVENTS: 1}),  # not an array
        (b"[]", {H_EVENTS_VERSION: 99, H_EVENTS: 0}),  # a format this reader does not know
        (b"{}", None),
    ],
)
def test_what_is_not_an_event_is_an_error_not_a_change(
    body: bytes, headers: dict[str, Any] | None
) -> None:
    decoded = decode_events(body, headers)
    assert decoded.changes == [] and decoded.errors


def test_event_objects_refuses_what_is_not_events() -> None:
    with pytest.raises(DecodeError):
        event_objects(b"not json", None)
    with pytest.raises(DecodeError):
        event_objects(b'{"a": 1}', {H_EVENTS_VERSION: 1})
    with pytest.raises(DecodeError):
        event_objects(b"[1, 2]", {H_EVENTS_VERSION: 1})


async def test_a_batch_read_back_from_the_broker_decodes_whole(channel: AbstractChannel) -> None:
    changes = succeeded(4)
    batch = event_batch("diag.succeeded", [encode_event(c) for c in changes])
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    message = aio_pika.Message(batch.body, headers=batch.properties.headers)
    await channel.default_exchange.publish(message, routing_key=queue.name)

    delivery = await queue.get(timeout=5)
    await delivery.ack()
    assert events_in(delivery.headers) == 4
    assert decode_events(delivery.body, delivery.headers).changes == changes
    assert [e["task_id"] for e in event_objects(delivery.body, delivery.headers)] == [
        c.task_id for c in changes
    ]


def test_the_clients_helper_reads_batches_and_single_events_alike() -> None:
    changes = succeeded(2)
    batch = event_batch("diag.succeeded", [encode_event(c) for c in changes])
    single = event_message(changes[0])

    events = lifecycle_events(batch.body, batch.properties.headers)
    assert [(e["task_id"], e["status"]) for e in events] == [
        (c.task_id, "succeeded") for c in changes
    ]
    assert lifecycle_events(single.body, single.properties.headers) == events[:1]
    with pytest.raises(ValueError, match="not JSON"):
        lifecycle_events(b"garbage", batch.properties.headers)
