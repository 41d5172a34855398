"""Event batches: the lifecycle events of many tasks in one persistent message.

Why: a persistent, confirmed message costs the broker a disk write, a confirm
and a delivery to each bound queue, whatever its size. One message per event
made the broker do as much work for a task's outcome as for the task itself;
a consumer now sends every event that became due while its previous batch
awaited its confirm as the next batch (``warren.consumers.batcher``).

On the wire, per batch:

* routing key ``<queue>.<status>``: every event in it has that queue and
  status, so a binding on ``email.dead`` still receives exactly the dead
  letters of ``email``;
* body: a JSON array of events, each the JSON object of one event
  (``warren.service.wire.events``: ``task_id``, ``status``, ``attempt``…);
* headers: ``warren-events-version`` (1, this format) and ``warren-events``
  (how many events the array holds: a reader may count without parsing);
* properties: ``content_type=application/json``, ``delivery_mode`` 2
  (persistent), ``type=warren.events``, ``app_id=warren``, a random
  ``message_id``.

A message without ``warren-events-version`` is a single event, as consumers
published before batches: readers accept both (``decode_events`` for the
store's ``Change``, ``event_objects`` for the JSON). A batch can be delivered
twice like any message; readers deduplicate per event on
``<task_id>.<attempt>.<status>`` (``Change.dedup_key``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiormq import spec
from pydantic import TypeAdapter, ValidationError

from warren.service.errors import DecodeError
from warren.service.store.model import Change
from warren.service.wire.envelope import APP_ID, CONTENT_TYPE
from warren.service.wire.events import PERSISTENT, EventMessage

BATCH_VERSION = 1
BATCH_TYPE = "warren.events"
H_EVENTS_VERSION = "warren-events-version"
H_EVENTS = "warren-events"

_CHANGES = TypeAdapter(list[Change])


@dataclass(frozen=True, slots=True)
class DecodedEvents:
    """What one message said: the changes that are valid, and why the others are not."""

    changes: list[Change]
    errors: list[str] = field(default_factory=list)


def event_batch(routing_key: str, events: Sequence[bytes]) -> EventMessage:
    """One message of ``events`` (each ``encode_event``'s JSON), all of ``routing_key``."""
    return EventMessage(
        b"[" + b",".join(events) + b"]",
        spec.Basic.Properties(
            content_type=CONTENT_TYPE,
            delivery_mode=PERSISTENT,
            message_type=BATCH_TYPE,
            app_id=APP_ID,
            headers={H_EVENTS_VERSION: BATCH_VERSION, H_EVENTS: len(events)},
        ),
        routing_key,
    )


def events_in(headers: Mapping[str, Any] | None) -> int:
    """How many events a message carries, from its headers alone (1: a single event)."""
    count = (headers or {}).get(H_EVENTS)
    return count if isinstance(count, int) and not isinstance(count, bool) else 1


def decode_events(body: bytes, headers: Mapping[str, Any] | None) -> DecodedEvents:
    """Every event of a message as the ``Change`` it was built from.

    A batch is validated in one call; only if that fails is it read event by
    event, so that one malformed event costs only itself. Unknown fields are
    ignored (events may grow without breaking older readers).
    """
    try:
        batch = _is_batch(headers)
    except DecodeError as exc:
        return DecodedEvents([], [str(exc)])
    if not batch:
        try:
            return DecodedEvents([Change.model_validate_json(body)])
        except ValidationError as exc:
            return DecodedEvents([], [str(exc)])
    try:
        return DecodedEvents(_CHANGES.validate_json(body))
    except ValidationError:
        return _one_by_one(body)


def event_objects(body: bytes, headers: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Every event of a message as its JSON object: what subscribers of the events read.

    ``DecodeError`` (reason ``malformed-event``) for a body that is not JSON
    of the expected shape.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DecodeError("malformed-event", f"not JSON: {exc}") from None
    items = data if _is_batch(headers) else [data]
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise DecodeError("malformed-event", "not a JSON array of event objects")
    return items


def _is_batch(headers: Mapping[str, Any] | None) -> bool:
    version = (headers or {}).get(H_EVENTS_VERSION)
    if version is None:
        return False
    if version != BATCH_VERSION:
        raise DecodeError("unsupported-version", f"event batch version {version!r} is unknown")
    return True


def _one_by_one(body: bytes) -> DecodedEvents:
    try:
        items = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return DecodedEvents([], [f"not JSON: {exc}"])
    if not isinstance(items, list):
        return DecodedEvents([], ["a batch that is not a JSON array"])
    decoded = DecodedEvents([])
    for item in items:
        try:
            decoded.changes.append(Change.model_validate(item))
        except ValidationError as exc:
            decoded.errors.append(str(exc))
    return decoded
