"""What the recorder writes: items (one message of the recorder queue, or the gateway's own
``queued`` write), decoded, and taken from the head of the queue as one transaction's worth.

A message is a batch of events (``warren.service.wire.batches``; one event
alone from consumers older than batches), decoded with one validation call. An
item is written whole, in one transaction, and acked after it: never split
across two.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from aio_pika.abc import AbstractIncomingMessage

from warren.service.store import Change
from warren.service.wire import decode_events

log = logging.getLogger("warren.service.recorder")


@dataclass(frozen=True, slots=True)
class Item:
    """One message of the recorder queue (a batch of events, or one), or the gateway's write."""

    delivery: AbstractIncomingMessage | None  # None: the gateway's own write
    changes: Sequence[Change]  # its valid events (empty: all malformed, acked and dropped)


def decoded(delivery: AbstractIncomingMessage) -> tuple[Item, int]:
    """The delivery as an item, and how many of its events were malformed (logged, dropped)."""
    events = decode_events(delivery.body, delivery.headers)
    if events.errors:
        log.warning(
            "recorder: dropping %d malformed events of %s: %s",
            len(events.errors),
            delivery.message_id,
            events.errors[0],
        )
    return Item(delivery, events.changes), len(events.errors)


def take(pending: list[Item], limit: int) -> list[Item]:
    """The next write, removed from ``pending``: whole items from its head, up to ``limit``
    changes (one item larger than that goes alone)."""
    taken, changes = 0, 0
    for item in pending:
        if taken and changes + len(item.changes) > limit:
            break
        taken, changes = taken + 1, changes + len(item.changes)
    batch = pending[:taken]
    del pending[:taken]
    return batch


def deduplicated(batch: Sequence[Item]) -> list[Change]:
    """The batch's changes, each event once (its ``message_id``: task, attempt, status)."""
    seen: set[str] = set()
    changes: list[Change] = []
    for item in batch:
        for change in item.changes:
            if change.dedup_key not in seen:
                seen.add(change.dedup_key)
                changes.append(change)
    return changes


def count(items: Sequence[Item]) -> int:
    return sum(len(item.changes) for item in items)
