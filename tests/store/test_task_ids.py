"""Task ids: 32 hex digits (the wire format's), time-ordered UUIDv7s (the store's indexes)."""

from __future__ import annotations

import time
import uuid

from warren.service.store.model import TASK_ID, new_task_id


def _millis(task_id: str) -> int:
    return uuid.UUID(hex=task_id).int >> 80  # a UUIDv7's first 48 bits


def test_a_task_id_is_a_uuid7_in_32_lowercase_hex_digits() -> None:
    task_id = new_task_id()
    assert TASK_ID.match(task_id)
    parsed = uuid.UUID(hex=task_id)
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122


def test_ids_made_in_a_burst_sort_in_order_never_repeat_and_keep_the_clocks_time() -> None:
    """What keeps the store's id index growing at one edge: later ids sort after earlier
    ones, within one millisecond too; and a burst far over 1,000 ids a second does not push
    the time in the ids ahead of the clock (ordering by moving it forward would)."""
    before = time.time_ns() // 1_000_000
    ids = [new_task_id() for _ in range(20_000)]
    after = time.time_ns() // 1_000_000
    assert sorted(ids) == ids
    assert len(set(ids)) == len(ids)
    assert before <= _millis(ids[0]) and _millis(ids[-1]) <= after
