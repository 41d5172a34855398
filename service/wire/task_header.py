"""A task envelope's content header properties, from parts encoded once per kind of task.

``content_header`` encodes any properties value by value: ~10 µs for a task envelope, the
largest single cost of a gateway request's publish. Most of an envelope's properties are
the same for every task of one type from one submitter (content type, type, queue,
attempts, timeout, priority, app id): those parts are encoded once per such *shape* by
``content_header`` itself, and per task only its id, its times and its trace context
are. The header table's shared entries are kept as a dict as well, so the properties
object is built from a copy of it rather than header by header. The bytes are
``content_header``'s for ``envelope.to_properties()`` (``tests/test_task_header.py``
checks them), hence pamqp's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Any

from aiormq import spec

from warren.service.wire.content_header import (
    KINDS,
    LONG,
    TIMESTAMP,
    Unsupported,
    _key,
    _properties,
    _table,
    _value,
)
from warren.service.wire.envelope import (
    H_CREATED_AT,
    H_TRACEPARENT,
    H_TRACESTATE,
    Envelope,
    clean_traceparent,
    clean_tracestate,
)

MAX_SHAPES = 1024  # task types, submitters and options in use; past this, encoded each time
_KIND = dict(KINDS)
_KEY_TRACEPARENT = _key(H_TRACEPARENT) + b"S"
_KEY_TRACESTATE = _key(H_TRACESTATE) + b"S"
_KEY_CREATED_AT = _key(H_CREATED_AT) + b"S"


@dataclass(frozen=True, slots=True)
class _Shape:
    """The encoded parts every task of one shape shares, around its own values."""

    headers: dict[str, Any]  # the shared header entries, as ``Envelope.headers`` has them
    flags: int
    content_type: bytes  # the first property
    before_created: bytes  # table entries between the trace context and warren-created-at
    after_created: bytes  # the table's entries after warren-created-at
    mode_and_priority: bytes  # the properties between the table and message_id
    last: bytes  # type and app_id, after the timestamp


_shapes: dict[tuple[object, ...], _Shape | None] = {}


def task_message(envelope: Envelope) -> tuple[spec.Basic.Properties, tuple[int, bytes] | None]:
    """``envelope.to_properties()``, and ``content_header``'s flags and bytes for them; None
    for those when its shape cannot be encoded in parts (``content_header`` encodes them)."""
    key = _shape_key(envelope)
    shape = _shapes.get(key, _MISSING)
    if shape is _MISSING:
        shape = _shape(envelope)
        if len(_shapes) < MAX_SHAPES:
            _shapes[key] = shape
    if shape is None:
        return envelope.to_properties(), None
    traceparent = clean_traceparent(envelope.traceparent)
    tracestate = clean_tracestate(envelope.tracestate)
    created_at = envelope.created_at.isoformat()
    headers = shape.headers.copy()
    headers[H_CREATED_AT] = created_at
    if traceparent:
        headers[H_TRACEPARENT] = traceparent
    if tracestate:
        headers[H_TRACESTATE] = tracestate
    properties = envelope.to_properties(headers)  # refuses an id past 255 bytes
    encoded = _encoded(shape, envelope, traceparent, tracestate, created_at)
    return properties, (shape.flags, encoded)


def _shape_key(envelope: Envelope) -> tuple[object, ...]:
    return (
        envelope.type,
        envelope.queue,
        envelope.attempt,
        envelope.max_attempts,
        envelope.timeout_seconds,
        envelope.submitter,
        envelope.priority,
    )


def _encoded(
    shape: _Shape,
    envelope: Envelope,
    traceparent: str | None,
    tracestate: str | None,
    created_at: str,
) -> bytes:
    trace = b""
    if traceparent:
        trace = _long_string(_KEY_TRACEPARENT, traceparent)
    if tracestate:
        trace += _long_string(_KEY_TRACESTATE, tracestate)
    table = b"".join(
        (
            trace,
            shape.before_created,
            _long_string(_KEY_CREATED_AT, created_at),
            shape.after_created,
        )
    )
    task_id = envelope.id.encode()
    created = envelope.created_at
    aware = created if created.utcoffset() is not None else created.replace(tzinfo=UTC)
    return b"".join(
        (
            shape.content_type,
            LONG.pack(len(table)),
            table,
            shape.mode_and_priority,
            bytes((len(task_id),)),
            task_id,
            TIMESTAMP.pack(int(aware.timestamp())),
            shape.last,
        )
    )


def _long_string(key: bytes, value: str) -> bytes:
    encoded = value.encode()
    return key + LONG.pack(len(encoded)) + encoded


def _shape(envelope: Envelope) -> _Shape | None:
    """The shared parts, each encoded by ``content_header`` from the envelope's own
    properties; None if they are not laid out as this module expects."""
    properties = envelope.to_properties()
    headers = dict(properties.headers or {})
    for name in (H_TRACEPARENT, H_TRACESTATE, H_CREATED_AT):
        headers.pop(name, None)
    names = sorted(headers)
    if not names or names[0] <= H_TRACESTATE:
        return None  # the trace context's entries first, then the rest: the order relied on
    before = [n for n in names if n < H_CREATED_AT]
    after = [n for n in names if n > H_CREATED_AT]
    try:
        flags, _ = _properties(properties)
        return _Shape(
            headers=headers,
            flags=flags,
            content_type=_field(properties, "content_type"),
            before_created=_entries(headers, before),
            after_created=_entries(headers, after),
            mode_and_priority=_field(properties, "delivery_mode") + _field(properties, "priority"),
            last=_field(properties, "message_type") + _field(properties, "app_id"),
        )
    except Unsupported:
        return None


def _entries(headers: dict[str, Any], names: list[str]) -> bytes:
    """The table entries of ``names``, without the table's length."""
    return _table({name: headers[name] for name in names})[LONG.size :]


def _field(properties: spec.Basic.Properties, name: str) -> bytes:
    value = getattr(properties, name)
    if value is None or value == "":
        raise Unsupported(f"{name} unset")
    return _value(_KIND[name], value)


_MISSING = _Shape({}, 0, b"", b"", b"", b"", b"")
