"""Dead letters: the delivery exactly as it came, plus ``warren-dead-*`` headers saying why.

Undecodable deliveries are dead-lettered too, so nothing here assumes an
envelope: the original body, properties and headers are copied as they are
(bounded: a header larger than the AMQP frame makes the broker close the
whole connection), and made encodable again (``copies.encodable``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aio_pika

from warren.service.wire.copies import encodable
from warren.service.wire.delivered import Delivered
from warren.service.wire.envelope import APP_ID, bounded

H_DEAD_REASON = "warren-dead-reason"
H_DEAD_ERROR_TYPE = "warren-dead-error-type"
H_DEAD_ERROR = "warren-dead-error"
H_DEAD_AT = "warren-dead-at"
H_DEAD_QUEUE = "warren-dead-queue"
H_DEAD_ATTEMPTS = "warren-dead-attempts"
MAX_COPIED_HEADERS = 16_384


def dead_letter_message(
    delivery: Delivered,
    *,
    reason: str,
    error_type: str,
    error: str,
    queue: str,
    attempts: int,
) -> aio_pika.Message:
    """The delivery as it came plus headers saying why it is dead (undecodable ones too)."""
    headers = _copyable_headers(delivery.headers or {})
    headers.update(
        {
            H_DEAD_REASON: bounded(reason, 100),
            H_DEAD_ERROR_TYPE: bounded(error_type, 200),
            H_DEAD_ERROR: bounded(error),
            H_DEAD_AT: datetime.now(UTC).isoformat(),
            H_DEAD_QUEUE: queue,
            H_DEAD_ATTEMPTS: attempts,
        }
    )
    message = aio_pika.Message(
        delivery.body,
        content_type=delivery.content_type,
        content_encoding=delivery.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=delivery.message_id,
        type=delivery.type,
        timestamp=delivery.timestamp,
        app_id=APP_ID,
        headers=headers,
    )
    return encodable(message, keep=("warren-dead-",))  # headers as they came may not re-encode


def _copyable_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """Original headers, unless they are so large that ours could push them past a frame."""
    kept = {k: v for k, v in headers.items() if k != "x-death"}
    if len(repr(kept)) > MAX_COPIED_HEADERS:
        return {"warren-dropped-headers": "original headers too large to keep"}
    return kept
