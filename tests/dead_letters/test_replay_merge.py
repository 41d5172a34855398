"""How a replay folds into a dead task's record (pure: ``warren.service.store.merge``).

Why: a dead task is final, yet its replay must show in the same record (attempt n+1, the
replay in the history), and a late event from before the replay must not end it again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from warren.service.store.merge import merge_all
from warren.service.store.model import REPLAYED, Change, Status

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ID = "a" * 32


def change(status: Status, attempt: int, seconds: float, **extra: Any) -> Change:
    values: dict[str, Any] = {
        "task_id": ID,
        "type": "diag.flaky",
        "queue": "diag",
        "status": status,
        "attempt": attempt,
        "max_attempts": 1,
        "at": T0 + timedelta(seconds=seconds),
        "started_at": T0 + timedelta(seconds=seconds) if status is not Status.QUEUED else None,
    }
    return Change(**{**values, **extra})


DEAD = change(Status.DEAD, 1, 1, reason="attempts-exhausted", error_type="FlakyError")
REPLAY = change(Status.QUEUED, 2, 2, max_attempts=2, reason=REPLAYED)
SUCCEEDED = change(Status.SUCCEEDED, 2, 3, max_attempts=2, result={"ok": True})


def test_a_replay_reopens_the_dead_task_and_its_next_run_ends_it() -> None:
    queued = merge_all(None, [DEAD, REPLAY])
    assert queued is not None and queued.status is Status.QUEUED
    assert (queued.attempt, queued.max_attempts, queued.reason) == (2, 2, None)
    assert queued.finished_at is None
    done = merge_all(queued, [SUCCEEDED])
    assert done is not None and done.status is Status.SUCCEEDED and done.result == {"ok": True}
    assert [(a.number, a.replayed_at is not None) for a in done.attempts] == [(1, False), (2, True)]


def test_any_order_gives_the_same_record() -> None:
    orders = [
        [DEAD, REPLAY, SUCCEEDED],
        [REPLAY, DEAD, SUCCEEDED],
        [SUCCEEDED, REPLAY, DEAD],
        [DEAD, SUCCEEDED, REPLAY],
    ]
    records = [merge_all(None, o) for o in orders]
    assert all(r is not None and r.status is Status.SUCCEEDED for r in records)
    assert (
        len({tuple(a.to_json().items().__repr__() for a in r.attempts) for r in records if r}) == 1
    )


def test_a_dead_task_without_a_replay_stays_dead() -> None:
    late = change(Status.RUNNING, 1, 5)
    record = merge_all(None, [DEAD, late])
    assert record is not None and record.status is Status.DEAD
