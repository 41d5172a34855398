"""A delivery copied into a new message, which the client library must be able to encode.

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

from warren.service.wire.envelope import bounded

H_DROPPED = "warren-dropped-headers"
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
