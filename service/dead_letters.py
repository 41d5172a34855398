"""Dead letters between broker and store: a dead delivery as a ``DeadLetter``, and back.

``from_delivery`` reads what the consumer wrote (``warren-dead-*`` headers,
``warren.service.wire.dead``) and what the broker writes when it dead-letters
by itself (a quorum queue's delivery limit: ``x-first-death-reason``).
``replay_message`` and ``replay_change`` make the replay: the same task id,
attempt n+1, and a fresh budget of the task's ``max_attempts`` runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractIncomingMessage

from warren.service.store.dead import DeadLetter
from warren.service.store.model import REPLAYED, TASK_ID, Change, Status
from warren.service.wire.dead import (
    H_DEAD_AT,
    H_DEAD_ATTEMPTS,
    H_DEAD_ERROR,
    H_DEAD_ERROR_TYPE,
    H_DEAD_QUEUE,
    H_DEAD_REASON,
)
from warren.service.wire.envelope import (
    H_ATTEMPT,
    H_CREATED_AT,
    H_MAX_ATTEMPTS,
    H_QUEUE,
    H_SUBMITTER,
    H_TRACEPARENT,
    H_TYPE,
)


def from_delivery(delivery: AbstractIncomingMessage, queue: str, max_bytes: int) -> DeadLetter:
    """The dead letter a delivery of ``<ns>.<queue>.dead`` holds (bodies over ``max_bytes``
    keep their size and headers only)."""
    headers = _json_safe(delivery.headers or {})
    body = delivery.body
    return DeadLetter(
        id=_letter_id(delivery.message_id, body, headers),
        queue=_text(headers.get(H_DEAD_QUEUE)) or _text(headers.get(H_QUEUE)) or queue,
        type=_text(headers.get(H_TYPE)) or delivery.type,
        reason=_text(headers.get(H_DEAD_REASON)) or _broker_reason(headers),
        error_type=_text(headers.get(H_DEAD_ERROR_TYPE)),
        error=_text(headers.get(H_DEAD_ERROR)),
        attempts=_int(headers.get(H_DEAD_ATTEMPTS)) or _int(headers.get(H_ATTEMPT)),
        dead_at=_time(headers.get(H_DEAD_AT)) or datetime.now(UTC),
        size=len(body),
        submitter=_text(headers.get(H_SUBMITTER)),
        body=body if len(body) <= max_bytes else None,
        headers=headers,
        properties=_json_safe(
            {
                "content_type": delivery.content_type,
                "content_encoding": delivery.content_encoding,
                "message_id": delivery.message_id,
                "type": delivery.type,
                "timestamp": delivery.timestamp,
            }
        ),
    )


def replay_message(letter: DeadLetter) -> aio_pika.Message:
    """The letter as a task again: its envelope's headers, attempt n+1 of n + max_attempts."""
    assert letter.body is not None
    headers = {
        k: v
        for k, v in (letter.headers or {}).items()
        if not k.startswith(("warren-dead-", "x-", "warren-dropped-"))
    }
    budget = _int(headers.get(H_MAX_ATTEMPTS))
    if letter.attempts is not None and budget is not None:
        headers[H_ATTEMPT] = letter.attempts + 1
        headers[H_MAX_ATTEMPTS] = letter.attempts + budget
    props = letter.properties or {}
    return aio_pika.Message(
        letter.body,
        content_type=props.get("content_type"),
        content_encoding=props.get("content_encoding"),
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=props.get("message_id"),
        type=props.get("type"),
        timestamp=_time(props.get("timestamp")),
        app_id="warren",
        headers=headers,
    )


def replay_change(letter: DeadLetter, at: datetime) -> Change | None:
    """The record's ``queued`` change of the replayed attempt; None for a delivery that was
    never a task (nothing to record)."""
    headers = letter.headers or {}
    budget = _int(headers.get(H_MAX_ATTEMPTS))
    if not TASK_ID.match(letter.id) or not letter.type or letter.attempts is None or not budget:
        return None
    traceparent = _text(headers.get(H_TRACEPARENT)) or ""
    parts = traceparent.split("-")
    return Change(
        task_id=letter.id,
        type=letter.type,
        queue=letter.queue,
        status=Status.QUEUED,
        attempt=letter.attempts + 1,
        max_attempts=letter.attempts + budget,
        at=at,
        reason=REPLAYED,
        trace_id=parts[1] if len(parts) == 4 else None,
        created_at=_time(headers.get(H_CREATED_AT)),
        submitter=letter.submitter,
    )


def _letter_id(message_id: str | None, body: bytes, headers: Mapping[str, Any]) -> str:
    """The task id; a delivery without one gets a stable id from its content."""
    if message_id and TASK_ID.match(message_id):
        return message_id
    digest = hashlib.sha256(body + orjson.dumps(headers, option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()[:32]


def _broker_reason(headers: Mapping[str, Any]) -> str | None:
    """Dead-lettered by the broker itself (e.g. a quorum queue's delivery limit)."""
    reason = _text(headers.get("x-first-death-reason"))
    return f"broker-{reason}" if reason else None


def _json_safe(value: Mapping[str, Any]) -> dict[str, Any]:
    """AMQP header values (bytes, times, decimals) as JSON the store keeps (PostgreSQL text
    cannot hold NUL)."""
    raw = orjson.dumps(dict(value), default=_default).replace(b"\\u0000", b"")  # no NUL
    safe: dict[str, Any] = orjson.loads(raw)
    return safe


def _default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return str(value)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
