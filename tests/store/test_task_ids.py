"""Task ids: 32 hex digits (the wire format's), time-ordered UUIDv7s (the store's indexes)."""

from __future__ import annotations

import time
import uuid

from warren.service.store.model import TASK_ID, new_task_id


def test_a_task_id_is_a_uuid7_in_32_lowercase_hex_digits() -> None:
    before = time.time_ns() // 1_000_000
    task_id = new_task_id()
    after = time.time_ns() // 1_000_000
    assert TASK_ID.match(task_id)
    parsed = uuid.UUID(hex=task_id)
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert before <= parsed.int >> 80 <= after  # its first 48 bits: when it was made, in ms


def test_ids_made_one_after_another_sort_in_that_order_and_never_repeat() -> None:
    """What keeps the store's id index growing at one edge: later ids sort after earlier
    ones, within one millisecond too."""
    ids = [new_task_id() for _ in range(5000)]
    assert sorted(ids) == ids
    assert len(set(ids)) == len(ids)
