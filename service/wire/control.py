"""Control messages: commands about tasks from the gateway to every consumer (cancellations).

They go to ``<ns>.control`` (fanout) and land in the stream
``<ns>.control.log``, which every consumer reads from "retention ago"
onwards: a consumer that starts after a cancellation still learns of it.
A ``sync`` message carries a random marker: a consumer that publishes one and
then reads it back knows it has read everything published before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import aio_pika
import orjson

from warren.service.store.model import TASK_ID
from warren.service.wire.envelope import APP_ID, CONTENT_TYPE


@dataclass(frozen=True)
class ControlMessage:
    """A control message as read: body ``{"kind", "value", "at"}``."""

    kind: Literal["cancel", "sync"]
    value: str  # the task id of a cancel, the marker of a sync
    at: datetime


def cancel_message(task_id: str, at: datetime | None = None) -> aio_pika.Message:
    """Cancel ``task_id`` (the gateway's ``DELETE /v1/tasks/{id}``)."""
    return _message("cancel", task_id, at)


def sync_message(marker: str) -> aio_pika.Message:
    """A consumer's marker: read back, it proves everything before it was read."""
    return _message("sync", marker, None)


def _message(kind: str, value: str, at: datetime | None) -> aio_pika.Message:
    body = {"kind": kind, "value": value, "at": (at or datetime.now(UTC)).isoformat()}
    return aio_pika.Message(
        orjson.dumps(body),
        content_type=CONTENT_TYPE,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=f"{kind}.{value}",
        type=f"warren.control.{kind}",
        app_id=APP_ID,
    )


def parse_control(body: bytes) -> ControlMessage | None:
    """The message, or None for anything else (a newer kind this consumer does not know)."""
    try:
        data = orjson.loads(body)
        kind, value, at = data["kind"], data["value"], datetime.fromisoformat(data["at"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    if kind == "cancel" and isinstance(value, str) and TASK_ID.match(value):
        return ControlMessage("cancel", value, at)
    if kind == "sync" and isinstance(value, str):
        return ControlMessage("sync", value, at)
    return None


def leader_token(fired_through: datetime) -> aio_pika.Message:
    """The scheduler leader's token (``warren.service.scheduler``): whoever holds it leads,
    and every tick up to ``fired_through`` was fired when it was published."""
    body = {"kind": "leader", "fired_through": fired_through.isoformat()}
    return aio_pika.Message(
        orjson.dumps(body),
        content_type=CONTENT_TYPE,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        type="warren.control.leader",
        app_id=APP_ID,
    )


def parse_leader_token(body: bytes) -> datetime | None:
    """The token's ``fired_through``; None for anything else."""
    try:
        data = orjson.loads(body)
        when = datetime.fromisoformat(data["fired_through"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    return when if when.tzinfo is not None else None
