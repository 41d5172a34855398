"""Lifecycle events: what consumers tell the rest of the system about each state change.

Published (confirmed, persistent) to ``<ns>.events`` with routing key
``<queue>.<status>`` before the delivery is acked, so a crash can only
duplicate an event, never lose one. ``message_id`` is
``<task id>.<attempt>.<status>``: readers deduplicate on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import aio_pika
import orjson
from aiormq import spec

from warren.service.envelope import CONTENT_TYPE, Envelope


class Status(StrEnum):
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"


PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)
EVENT_TYPES = {s.value: f"warren.event.{s.value}" for s in Status}


def event_body(envelope: Envelope, status: Status, worker: str, **details: Any) -> dict[str, Any]:
    """The event as a dict: ids, attempt, time, trace id, plus status-specific details.

    ``redelivered`` says the broker handed this run a message an earlier delivery may
    already have run: readers deduplicating on ``message_id`` can tell a repeated run
    (redelivered) from a repeated event.

    ``details`` are e.g. ``result`` (succeeded), ``error`` and ``next_delay_seconds``
    (retrying), ``reason`` and ``error`` (dead), and on every event of a run
    ``started_at``, when the attempt started: a short task publishes no
    ``running`` event (``running_event_delay_seconds``), so its outcome says it.
    Events of tasks that never ran (undecodable, cancelled while queued) have none.
    """
    return {
        "task_id": envelope.id,
        "type": envelope.type,
        "queue": envelope.queue,
        "status": status.value,
        "attempt": envelope.attempt,
        "max_attempts": envelope.max_attempts,
        "at": datetime.now(UTC).isoformat(),
        "trace_id": envelope.trace_id,
        "worker": worker,
        "redelivered": envelope.redelivered,
        **details,
    }


@dataclass(frozen=True, slots=True)
class EventMessage:
    """An event as it goes on the wire: body and AMQP properties, built directly.

    Consumers publish one or two events per task; ``aio_pika.Message`` sets a
    dozen attributes through a checking ``__setattr__`` and then copies them into
    these same properties, which cost more than the rest of the event.
    """

    body: bytes
    properties: spec.Basic.Properties


def event_message(body: dict[str, Any]) -> EventMessage:
    status = body["status"]
    return EventMessage(
        orjson.dumps(body, default=str),
        spec.Basic.Properties(
            content_type=CONTENT_TYPE,
            delivery_mode=PERSISTENT,
            message_id=f"{body['task_id']}.{body['attempt']}.{status}",
            message_type=EVENT_TYPES.get(status) or f"warren.event.{status}",
            app_id="warren",
        ),
    )
