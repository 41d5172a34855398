"""Reading lifecycle events straight off the broker, for subscribers of ``<ns>.events``.

The HTTP API (``events``, ``wait``) is the way to follow a task; some readers
bind a queue of their own to the events exchange instead (an audit log, a
search index). Consumers publish events in batches, many per message, and
older consumers one per message: ``lifecycle_events`` reads either kind, so a
subscriber never parses the batch format itself.

The wire format lives in ``warren.service.wire.batches``; it is imported on
the first call, so ``import warren.client`` stays free of the AMQP libraries a
plain HTTP client does not need.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def lifecycle_events(body: bytes, headers: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The event objects one message of ``<ns>.events`` carries, in publish order.

    Pass the message's body and headers (aio-pika: ``message.body``,
    ``message.headers``; pika: ``body``, ``properties.headers``). Each event
    is a dict with ``task_id``, ``status``, ``attempt``, ``at`` and the rest
    the README lists. Events are at least once: deduplicate on
    ``(task_id, attempt, status)``. Raises ``ValueError`` for a body that is
    not events.
    """
    from warren.service.errors import DecodeError
    from warren.service.wire.batches import event_objects

    try:
        return event_objects(body, headers)
    except DecodeError as exc:
        raise ValueError(str(exc)) from None
