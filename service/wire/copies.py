"""A delivery copied into a new message: a dead letter, or a counted copy; always encodable.

A counted copy (``counted_copy``) is how a classic queue's consumer carries the
number of a message's unsettled deliveries (``warren-deliveries``) from one
delivery to the next: the broker keeps no per-message state a client can
write (``warren.consumers.redelivery``).

pamqp decodes some header values into forms it cannot encode again: a long
string that is not UTF-8 comes back as ``bytes``, which its table encoder
refuses (``TypeError`` at publish). A message that copies a delivery's headers
(a dead letter) is made ``encodable``: such values go as byte arrays, the
bytes unchanged; if that is still not enough, the copied headers are left out
and ``warren-dropped-headers`` says why.
"""

from __future__ import annotations

from typing import Any

import aio_pika

from warren.service.wire.delivered import Delivered
from warren.service.wire.envelope import bounded

H_DROPPED = "warren-dropped-headers"
H_DELIVERIES = "warren-deliveries"  # deliveries of this message that went unsettled (classic)
ENCODING_ERRORS = (TypeError, ValueError, OverflowError)


def encodable(message: aio_pika.Message, keep: tuple[str, ...] = ()) -> aio_pika.Message:
    """``message``, its headers made encodable; ``keep``: header name prefixes of Warren's
    own, kept even when the copied ones must go."""
    try:
        message.properties.marshal()
        return message
    except ENCODING_ERRORS:
        pass
    message.headers = _as_byte_arrays(message.headers)
    try:
        message.properties.marshal()
    except ENCODING_ERRORS as exc:
        kept = {k: v for k, v in message.headers.items() if k.startswith(keep)}
        message.headers = {**kept, H_DROPPED: bounded(f"not encodable: {exc}", 300)}
    return message


def _as_byte_arrays(value: Any) -> Any:
    if isinstance(value, bytes):
        return bytearray(value)
    if isinstance(value, dict):
        return {k: _as_byte_arrays(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_byte_arrays(v) for v in value]
    return value


def unsettled(delivery: Delivered) -> int:
    """How many earlier deliveries of this message went unsettled, as far as a consumer
    counted them (``warren-deliveries``); a value that is not a count reads as none."""
    value = (delivery.headers or {}).get(H_DELIVERIES)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def counted_copy(delivery: Delivered, count: int) -> aio_pika.Message:
    """The delivery as a new message carrying ``warren-deliveries``. Not ``user_id`` (the
    broker checks it against the publishing user) nor ``expiration`` (judged already)."""
    message = aio_pika.Message(
        delivery.body,
        headers={**(delivery.headers or {}), H_DELIVERIES: count},
        content_type=delivery.content_type,
        content_encoding=delivery.content_encoding,
        delivery_mode=delivery.delivery_mode,
        priority=delivery.priority,
        correlation_id=delivery.correlation_id,
        reply_to=delivery.reply_to,
        message_id=delivery.message_id,
        timestamp=delivery.timestamp,
        type=delivery.type,
        app_id=delivery.app_id,
    )
    return encodable(message, keep=(H_DELIVERIES,))
