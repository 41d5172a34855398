"""The task envelope: a task as a message, version 1.

On the wire:

* body: the payload as UTF-8 JSON (``content_type=application/json``);
* properties: ``message_id`` = task id (32 hex), ``type`` = task type,
  ``timestamp`` = creation time, ``delivery_mode`` = persistent, ``priority``,
  ``app_id=warren``;
* headers: ``warren-version``, ``warren-type``, ``warren-queue``,
  ``warren-attempt``, ``warren-max-attempts``, ``warren-timeout-ms``,
  ``warren-created-at`` (ISO 8601, UTC), W3C ``traceparent``/``tracestate``,
  and ``warren-submitter`` when known.

Every value copied into a header is bounded: a header larger than the AMQP
frame makes the broker close the whole connection.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import aio_pika
from aiormq import spec

from warren.service.errors import DecodeError
from warren.service.store.model import TASK_ID
from warren.service.wire.delivered import Delivered

VERSION = 1
CONTENT_TYPE = "application/json"
APP_ID = "warren"

H_VERSION = "warren-version"
H_TYPE = "warren-type"
H_QUEUE = "warren-queue"
H_ATTEMPT = "warren-attempt"
H_MAX_ATTEMPTS = "warren-max-attempts"
H_TIMEOUT_MS = "warren-timeout-ms"
H_CREATED_AT = "warren-created-at"
H_SUBMITTER = "warren-submitter"
H_TRACEPARENT = "traceparent"
H_TRACESTATE = "tracestate"

TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
MAX_TRACESTATE = 512  # W3C: at most 32 members, and vendors keep it short
MAX_TEXT_HEADER = 1000
MAX_SUBMITTER = 200
MAX_SHORT_STRING = 255  # AMQP shortstr: message_id, type, header names
PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)


def bounded(text: str, limit: int = MAX_TEXT_HEADER) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clean_traceparent(value: object) -> str | None:
    """A valid ``traceparent`` or None: malformed trace context is ignored, never an error."""
    return value if isinstance(value, str) and TRACEPARENT.match(value) else None


def clean_tracestate(value: object) -> str | None:
    if isinstance(value, str) and len(value) <= MAX_TRACESTATE and value.isprintable():
        return value
    return None


@dataclass(frozen=True, slots=True)
class Envelope:
    """A task as it travels: identity, attempt bookkeeping, trace context and the raw payload."""

    id: str
    type: str
    queue: str
    body: bytes
    attempt: int
    max_attempts: int
    timeout_seconds: float
    created_at: datetime
    priority: int = 0
    traceparent: str | None = None
    tracestate: str | None = None
    submitter: str | None = None
    # Not on the wire: the broker's flag on the delivery this envelope came from, so every
    # event of a run can say whether an earlier delivery of it may already have run.
    redelivered: bool = False

    @property
    def trace_id(self) -> str | None:
        return self.traceparent[3:35] if self.traceparent else None

    @property
    def attempts_left(self) -> bool:
        return self.attempt < self.max_attempts

    def next_attempt(self, trace_context: Mapping[str, str] | None = None) -> Envelope:
        """The envelope of the next attempt; ``trace_context`` (``traceparent``/``tracestate``
        of the span publishing it) makes that attempt a child of the one that failed."""
        following = replace(self, attempt=self.attempt + 1, redelivered=False)
        return following if trace_context is None else following.traced(trace_context)

    def traced(self, trace_context: Mapping[str, str]) -> Envelope:
        """This envelope as a child of the span whose ``traceparent``/``tracestate`` are given
        (the span publishing it); a malformed ``traceparent`` keeps the current one."""
        return replace(
            self,
            traceparent=clean_traceparent(trace_context.get(H_TRACEPARENT)) or self.traceparent,
            tracestate=clean_tracestate(trace_context.get(H_TRACESTATE)),
        )

    def headers(self) -> dict[str, Any]:
        headers: dict[str, Any] = {
            H_VERSION: VERSION,
            H_TYPE: self.type,
            H_QUEUE: self.queue,
            H_ATTEMPT: self.attempt,
            H_MAX_ATTEMPTS: self.max_attempts,
            H_TIMEOUT_MS: max(1, round(self.timeout_seconds * 1000)),  # never 0: undecodable
            H_CREATED_AT: self.created_at.isoformat(),
        }
        # Trace context and submitter come from a request: re-checked here, the last door.
        if traceparent := clean_traceparent(self.traceparent):
            headers[H_TRACEPARENT] = traceparent
        if tracestate := clean_tracestate(self.tracestate):
            headers[H_TRACESTATE] = tracestate
        if self.submitter:
            headers[H_SUBMITTER] = bounded(self.submitter, MAX_SUBMITTER)
        return headers

    def to_message(self) -> aio_pika.Message:
        """The AMQP message. ``message_id`` and ``type`` are AMQP short strings (at most 255
        bytes): a longer one is a ``ValueError`` here, not a ``TypeError`` from deep inside
        a publish."""
        self._check_short_strings()
        return aio_pika.Message(
            self.body,
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=self.id,
            type=self.type,
            timestamp=self.created_at,
            priority=self.priority,
            app_id=APP_ID,
            headers=self.headers(),
        )

    def to_properties(self, headers: dict[str, Any] | None = None) -> spec.Basic.Properties:
        """The properties of ``to_message()``, the same on the wire, built directly: the batch
        route builds hundreds at once, and ``aio_pika.Message`` sets a dozen attributes
        through a checking ``__setattr__`` before copying them into these. ``headers``:
        ``self.headers()``, built already (``wire.task_header`` copies most of them)."""
        self._check_short_strings()
        return spec.Basic.Properties(
            content_type=CONTENT_TYPE,
            delivery_mode=PERSISTENT,
            message_id=self.id,
            message_type=self.type,
            timestamp=self.created_at,
            priority=self.priority,
            app_id=APP_ID,
            headers=self.headers() if headers is None else headers,
        )

    def _check_short_strings(self) -> None:
        for name, value in (("message_id", self.id), ("type", self.type)):
            if len(value.encode()) > MAX_SHORT_STRING:
                raise ValueError(f"{name} is longer than {MAX_SHORT_STRING} bytes")

    @classmethod
    def from_delivery(cls, delivery: Delivered) -> Envelope:
        """Decode a delivery; anything that is not a v1 envelope raises ``DecodeError``."""
        if delivery.content_type != CONTENT_TYPE:
            raise DecodeError(
                "wrong-content-type", f"content type {delivery.content_type!r} is not JSON"
            )
        headers = delivery.headers or {}
        version = _int_header(headers, H_VERSION)
        if version != VERSION:
            raise DecodeError("unsupported-version", f"envelope version {version} is not {VERSION}")
        task_id = delivery.message_id or ""
        if not TASK_ID.match(task_id):
            raise DecodeError("bad-header", "message_id is not a 32-hex task id")
        task_type = _str_header(headers, H_TYPE)
        if delivery.type is not None and delivery.type != task_type:
            raise DecodeError("bad-header", "type property and warren-type header differ")
        attempt = _int_header(headers, H_ATTEMPT)
        max_attempts = _int_header(headers, H_MAX_ATTEMPTS)
        if not 1 <= attempt <= max_attempts:
            raise DecodeError("bad-header", f"attempt {attempt} of {max_attempts} is impossible")
        return cls(
            id=task_id,
            type=task_type,
            queue=_str_header(headers, H_QUEUE),
            body=delivery.body,
            attempt=attempt,
            max_attempts=max_attempts,
            timeout_seconds=_positive_int_header(headers, H_TIMEOUT_MS) / 1000,
            created_at=_time_header(headers, H_CREATED_AT),
            priority=delivery.priority or 0,
            traceparent=clean_traceparent(_text(headers.get(H_TRACEPARENT))),
            tracestate=clean_tracestate(_text(headers.get(H_TRACESTATE))),
            submitter=_text(headers.get(H_SUBMITTER)),
            redelivered=bool(delivery.redelivered),
        )


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


def _str_header(headers: Mapping[str, Any], name: str) -> str:
    value = _text(headers.get(name))
    if not value:
        raise DecodeError("missing-header", f"header {name} is missing or not text")
    return value


def _int_header(headers: Mapping[str, Any], name: str) -> int:
    value = headers.get(name)
    if value is None:
        raise DecodeError("missing-header", f"header {name} is missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise DecodeError("bad-header", f"header {name} is not an integer")
    return value


def _positive_int_header(headers: Mapping[str, Any], name: str) -> int:
    """A timeout of 0 or less would time every attempt out at once and burn its retries."""
    value = _int_header(headers, name)
    if value <= 0:
        raise DecodeError("bad-header", f"header {name} is not positive")
    return value


def _time_header(headers: Mapping[str, Any], name: str) -> datetime:
    """With an offset only: a naive time would be read in whatever zone the consumer runs."""
    try:
        value = datetime.fromisoformat(_str_header(headers, name))
    except ValueError as exc:
        raise DecodeError("bad-header", f"header {name} is not an ISO 8601 time") from exc
    if value.utcoffset() is None:
        raise DecodeError("bad-header", f"header {name} has no UTC offset")
    return value
