"""Lifecycle events: the store's model of a change (``Change``) on the wire, and back.

There is one per state change of a task, confirmed and persistent on
``<ns>.events`` with routing key ``<queue>.<status>`` before the delivery is
acked, so a crash can only duplicate an event, never lose one. Consumers send
them in batches, many events of one routing key per message
(``warren.service.wire.batches``); a message of one event alone (this module's
``event_message``, the format of consumers before batches) has ``message_id``
``<task id>.<attempt>.<status>`` (``Change.dedup_key``). Readers deduplicate
on that key, read from the event itself. The recorder decodes every event back
into the ``Change`` it was built from: there is no second shape of an event to
keep in step.

An event is a JSON object: ``task_id``, ``type``, ``queue``, ``status``,
``attempt``, ``max_attempts``, ``at``, ``trace_id``, ``worker``,
``redelivered``, ``created_at`` and ``submitter`` (from the envelope: any
single event rebuilds a whole record, owner included, should the gateway's
own ``queued`` write be lost with it), and those details the change has:
``result`` (succeeded), ``error_type``, ``error``, ``next_delay_seconds``
(retrying), ``reason`` (dead, cancelled), and ``started_at`` on every event
of a run: a short task publishes no ``running`` event
(``running_event_delay_seconds``), so its outcome says when it started.
Events of tasks that never ran (undecodable, cancelled while queued) have none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
import orjson
from aiormq import spec
from pydantic import ValidationError

from warren.service.errors import DecodeError
from warren.service.store.model import Change, Status
from warren.service.topology import Names
from warren.service.wire.envelope import APP_ID, CONTENT_TYPE, Envelope

PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)
EVENT_TYPES = {s: f"warren.event.{s.value}" for s in Status}
# Said only when known (every event says the rest, null or not).
DETAILS = ("next_delay_seconds", "error_type", "error", "reason", "started_at", "due_at")


@dataclass(frozen=True, slots=True)
class EventMessage:
    """An event as it goes on the wire: body, AMQP properties and routing key, built directly.

    Consumers publish one or two events per task; ``aio_pika.Message`` sets a
    dozen attributes through a checking ``__setattr__`` and then copies them into
    these same properties, which cost more than the rest of the event.
    """

    body: bytes
    properties: spec.Basic.Properties
    routing_key: str


def task_change(
    envelope: Envelope,
    status: Status,
    *,
    worker: str | None = None,
    at: datetime | None = None,
    started_at: datetime | None = None,
    result: Any = None,
    error_type: str | None = None,
    error: str | None = None,
    reason: str | None = None,
    next_delay_seconds: float | None = None,
    due_at: datetime | None = None,
) -> Change:
    """What ``envelope``'s task just went through (``at``, default now), as a ``Change``.

    The one builder of changes: consumers' events and the gateway's own
    ``queued`` write alike. Built unvalidated, on the hot path of every
    settle: the values come from an envelope Warren built or decoded (checked
    then) and from Warren's own outcome; the recorder validates what it decodes.
    A copy of a blank change with every field replaced is the same model as
    ``model_construct`` gives (every field set), at half its cost: it skips the
    per-field walk over defaults and aliases.
    """
    return _BLANK.model_copy(
        update=dict(
            task_id=envelope.id,
            type=envelope.type,
            queue=envelope.queue,
            status=status,
            attempt=envelope.attempt,
            max_attempts=envelope.max_attempts,
            at=at or datetime.now(UTC),
            trace_id=envelope.trace_id,
            worker=worker,
            redelivered=envelope.redelivered,
            result=result,
            error_type=error_type,
            error=error,
            reason=reason,
            next_delay_seconds=next_delay_seconds,
            started_at=started_at,
            created_at=envelope.created_at,
            submitter=envelope.submitter,
            due_at=due_at,
        )
    )


_NONE: dict[str, Any] = dict.fromkeys(Change.model_fields)
_BLANK = Change.model_construct(**_NONE)  # every field set (to None): ``task_change`` fills all


def encode_event(change: Change) -> bytes:
    """The JSON object of one event: a message of its own, or one element of a batch."""
    details = {name: getattr(change, name) for name in DETAILS}
    return _encoded(
        change.task_id,
        change.type,
        change.queue,
        change.status,
        change.attempt,
        change.max_attempts,
        change.at,
        change.trace_id,
        change.worker,
        change.redelivered,
        change.created_at,
        change.submitter,
        change.result,
        details,
    )


def event_of(
    envelope: Envelope,
    status: Status,
    worker: str,
    started_at: datetime | None = None,
    *,
    result: Any = None,
    error_type: str | None = None,
    error: str | None = None,
    reason: str | None = None,
    next_delay_seconds: float | None = None,
) -> bytes:
    """``encode_event(task_change(envelope, status, ...))``, byte for byte, built without the
    model: the consumers' path, once per event (a third of the cost: ``event_micro.py``)."""
    details = {
        "next_delay_seconds": next_delay_seconds,
        "error_type": error_type,
        "error": error,
        "reason": reason,
        "started_at": started_at,
    }
    return _encoded(
        envelope.id,
        envelope.type,
        envelope.queue,
        status,
        envelope.attempt,
        envelope.max_attempts,
        datetime.now(UTC),
        envelope.trace_id,
        worker,
        envelope.redelivered,
        envelope.created_at,
        envelope.submitter,
        result,
        details,
    )


def event_message(change: Change) -> EventMessage:
    """``change`` as a message of its own (consumers publish batches: ``event_batch``)."""
    return EventMessage(
        encode_event(change),
        spec.Basic.Properties(
            content_type=CONTENT_TYPE,
            delivery_mode=PERSISTENT,
            message_id=change.dedup_key,
            message_type=EVENT_TYPES[change.status],
            app_id=APP_ID,
        ),
        Names.event_key(change.queue, change.status.value),
    )


def _encoded(
    task_id: str,
    task_type: str,
    queue: str,
    status: Status,
    attempt: int,
    max_attempts: int,
    at: datetime,
    trace_id: str | None,
    worker: str | None,
    redelivered: bool,
    created_at: datetime | None,
    submitter: str | None,
    result: Any,
    details: dict[str, Any],
) -> bytes:
    """The one writer of an event's JSON (the module docstring says what it holds)."""
    body = {
        "task_id": task_id,
        "type": task_type,
        "queue": queue,
        "status": status.value,
        "attempt": attempt,
        "max_attempts": max_attempts,
        "at": at,
        "trace_id": trace_id,
        "worker": worker,
        "redelivered": redelivered,
        "created_at": created_at,
        "submitter": submitter,
    }
    if status is Status.SUCCEEDED:
        body["result"] = result  # even null: a handler may return nothing
    for name in DETAILS:
        if (value := details.get(name)) is not None:
            body[name] = value
    return orjson.dumps(body, default=str)


def decode_event(body: bytes) -> Change:
    """The change an event body says; ``DecodeError`` for anything that is not an event.

    Unknown fields are ignored, so consumers may add to events without breaking
    recorders that are older than them.
    """
    try:
        return Change.model_validate_json(body)
    except ValidationError as exc:
        raise DecodeError("malformed-event", str(exc)) from None
