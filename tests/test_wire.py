"""Lifecycle events and control messages as the README documents them, and read back.

No broker: the envelope's trip through RabbitMQ is ``test_envelope``'s; here the
encoders are checked against what readers of the event stream rely on (fields,
``message_id``, routing key), and the decoders against the encoders.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from tests.test_envelope import sample_envelope
from warren.service.errors import DecodeError
from warren.service.store.model import Change, Status
from warren.service.wire import (
    cancel_message,
    decode_event,
    encode_event,
    event_message,
    event_of,
    parse_control,
    sync_message,
    task_change,
)

STARTED = datetime(2026, 11, 25, 8, 0, 1, tzinfo=UTC)
EVERY_EVENT = {
    "task_id",
    "type",
    "queue",
    "status",
    "attempt",
    "max_attempts",
    "at",
    "trace_id",
    "worker",
    "redelivered",
    "created_at",
    "submitter",
}
OUTCOMES: list[tuple[Status, dict[str, Any], set[str]]] = [
    (Status.RUNNING, {}, {"started_at"}),
    (Status.SUCCEEDED, {"result": None}, {"result", "started_at"}),
    (
        Status.RETRYING,
        {"next_delay_seconds": 5.0, "error_type": "FlakyError", "error": "boom"},
        {"next_delay_seconds", "error_type", "error", "started_at"},
    ),
    (
        Status.DEAD,
        {"reason": "permanent", "error_type": "Permanent", "error": "no"},
        {"reason", "error_type", "error", "started_at"},
    ),
    (Status.CANCELLED, {"reason": "cancel-requested"}, {"reason", "started_at"}),
]


def _change(status: Status, **details: Any) -> Change:
    envelope = sample_envelope(attempt=2, redelivered=True)
    return task_change(envelope, status, worker="host:1", started_at=STARTED, **details)


@pytest.mark.parametrize(("status", "details", "extra"), OUTCOMES)
def test_an_event_carries_the_documented_fields(
    status: Status, details: dict[str, Any], extra: set[str]
) -> None:
    change = _change(status, **details)
    event = event_message(change)
    body = orjson.loads(event.body)
    assert set(body) == EVERY_EVENT | extra
    assert body["status"] == status.value and body["attempt"] == 2 and body["redelivered"] is True
    assert body["trace_id"] == change.trace_id and body["started_at"] == STARTED.isoformat()
    envelope = sample_envelope()
    assert (body["created_at"], body["submitter"]) == (envelope.created_at.isoformat(), "client-1")
    assert event.properties.message_id == f"{change.task_id}.2.{status.value}"
    assert event.properties.message_type == f"warren.event.{status.value}"
    assert event.properties.content_type == "application/json"
    assert event.properties.delivery_mode == 2
    assert event.routing_key == f"diag.{status.value}"


@pytest.mark.parametrize(("status", "details", "extra"), OUTCOMES)
def test_a_consumer_encodes_an_event_as_the_model_would(
    status: Status, details: dict[str, Any], extra: set[str]
) -> None:
    """``event_of`` (the consumers' path, no model) writes the very bytes of the model's."""
    envelope = sample_envelope(attempt=2, redelivered=True)
    for started in (STARTED, None):  # a run's event, and one of a task that never ran
        fast = event_of(envelope, status, "host:1", started, **details)
        at = datetime.fromisoformat(orjson.loads(fast)["at"])
        change = task_change(
            envelope, status, worker="host:1", at=at, started_at=started, **details
        )
        assert fast == encode_event(change)


def test_a_task_that_never_ran_has_no_start() -> None:
    change = task_change(sample_envelope(), Status.DEAD, worker="w", reason="unknown-type")
    assert "started_at" not in orjson.loads(event_message(change).body)


@pytest.mark.parametrize(("status", "details", "extra"), OUTCOMES)
def test_the_recorder_reads_back_the_change_an_event_was_built_from(
    status: Status, details: dict[str, Any], extra: set[str]
) -> None:
    change = _change(status, **details)
    assert decode_event(event_message(change).body) == change


def test_odd_text_is_cleaned_not_refused() -> None:
    """An event whose text would not fit the store still makes its record (cut, cleaned)."""
    change = task_change(sample_envelope(submitter="s" * 300), Status.SUCCEEDED, worker="w\x00")
    decoded = decode_event(event_message(change).body)
    assert decoded.submitter == "s" * 199 + "…" and decoded.worker == "w"


@pytest.mark.parametrize(
    "body",
    [b"not json", b"{}", b'{"task_id": "nope"}', orjson.dumps({"status": "exploded"})],
)
def test_anything_else_is_a_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError) as refused:
        decode_event(body)
    assert refused.value.reason == "malformed-event"


def test_control_messages_read_back_as_sent() -> None:
    task_id, at = "b" * 32, datetime.now(UTC) - timedelta(minutes=1)
    cancel = parse_control(cancel_message(task_id, at).body)
    assert cancel is not None and (cancel.kind, cancel.value, cancel.at) == ("cancel", task_id, at)
    sync = parse_control(sync_message("marker-1").body)
    assert sync is not None and (sync.kind, sync.value) == ("sync", "marker-1")
    assert parse_control(cancel_message("not-a-task-id").body) is None
    assert (
        parse_control(b'{"kind": "reboot", "value": "x", "at": "2026-01-01T00:00:00+00:00"}')
        is None
    )
