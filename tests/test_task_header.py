"""A task envelope's content header from parts encoded once per shape (``wire.task_header``):
the same bytes as pamqp's for every valid envelope, and the same refusals."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pamqp.frame
import pytest
from hypothesis import given, settings
from pamqp.header import ContentHeader

from tests.test_envelope import sample_envelope
from tests.test_envelope_properties import envelopes
from warren.service.coalesced import Outgoing, marshal
from warren.service.wire.content_header import content_header_frame
from warren.service.wire.envelope import Envelope
from warren.service.wire.task_header import task_message


def pamqps(envelope: Envelope) -> bytes:
    return pamqp.frame.marshal(ContentHeader(0, len(envelope.body), envelope.to_properties()), 3)


def frame_of(envelope: Envelope) -> bytes:
    """The content header as ``task_message`` has it; its properties are ``to_properties()``."""
    properties, encoded = task_message(envelope)
    assert encoded is not None
    assert properties == envelope.to_properties()
    return content_header_frame(properties, len(envelope.body), 3, encoded)


@settings(max_examples=300, deadline=None)
@given(envelope=envelopes())
def test_a_task_header_is_pamqps_bytes(envelope: Envelope) -> None:
    assert frame_of(envelope) == pamqps(envelope)


def test_tasks_of_one_shape_share_its_parts_and_keep_their_own_values() -> None:
    first = sample_envelope(traceparent=None, tracestate=None)
    others = [
        replace(first, id="f" * 32),
        replace(first, traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01", tracestate="k=v"),
        replace(first, created_at=datetime(2030, 1, 2, 3, 4, 5, 678, tzinfo=UTC)),
        replace(first, created_at=datetime(2030, 1, 2, 3, 4, 5)),  # naive: read as UTC
        replace(first, traceparent="not a traceparent", tracestate="\x00"),  # left out
        replace(first, submitter="ünïcode" * 40),  # bounded, another shape
    ]
    for envelope in (first, *others, first):
        assert frame_of(envelope) == pamqps(envelope), envelope


def test_a_batch_of_task_messages_marshals_as_without_the_parts() -> None:
    tasks = [sample_envelope(id=f"{n:032x}") for n in range(3)]
    with_parts = []
    for task in tasks:
        properties, encoded = task_message(task)
        with_parts.append(Outgoing("x", task.queue, task.body, properties, encoded=encoded))
    without = [Outgoing("x", t.queue, t.body, t.to_properties()) for t in tasks]
    assert marshal(1, 131072, with_parts) == marshal(1, 131072, without)


def test_a_task_id_too_long_is_refused_as_to_properties_refuses_it() -> None:
    envelope = sample_envelope()
    task_message(envelope)  # its shape is known
    with pytest.raises(ValueError, match="message_id is longer than 255 bytes"):
        task_message(replace(envelope, id="a" * 256))
