"""The merge rules as pure functions: duplicates, any order, never backwards."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from service.events import Status
from service.store import Change
from service.store.merge import merge, merge_all

T0 = datetime(2030, 1, 1, tzinfo=UTC)
TASK = "a" * 32


def change(status: Status, attempt: int = 1, ms: int = 0, **extra: Any) -> Change:
    return Change(
        task_id=TASK,
        type="diag.flaky",
        queue="diag",
        status=status,
        attempt=attempt,
        max_attempts=3,
        at=T0 + timedelta(milliseconds=ms),
        trace_id="f" * 32,
        worker="w1",
        **extra,
    )


QUEUED = change(Status.QUEUED, created_at=T0, submitter="alice")
LIFE = [
    QUEUED,
    change(Status.RUNNING, 1, 10),
    change(Status.RETRYING, 1, 20, error_type="FlakyError", error="boom", next_delay_seconds=1.0),
    change(Status.RUNNING, 2, 1100),
    change(Status.SUCCEEDED, 2, 1110, result={"ok": True}),
]


def test_a_whole_life_gives_the_expected_record() -> None:
    record = merge_all(None, LIFE)
    assert record is not None
    assert record.status is Status.SUCCEEDED and record.attempt == 2
    assert record.created_at == T0 and record.submitter == "alice"
    assert record.started_at == T0 + timedelta(milliseconds=10)
    assert record.finished_at == T0 + timedelta(milliseconds=1110)
    assert record.result == {"ok": True}
    assert (record.error_type, record.error) == ("FlakyError", "boom")
    first, second = record.attempts
    assert (first.number, first.outcome, first.next_delay_seconds) == (1, Status.RETRYING, 1.0)
    assert first.started_at == T0 + timedelta(milliseconds=10)
    assert first.finished_at == T0 + timedelta(milliseconds=20)
    assert (second.number, second.outcome, second.error) == (2, Status.SUCCEEDED, None)


def test_every_order_and_duplicates_give_the_same_record() -> None:
    expected = merge_all(None, LIFE)
    assert expected is not None
    for order in itertools.permutations(LIFE):
        record = merge_all(None, order)
        assert record is not None
        assert record.attempts == expected.attempts
        assert (record.status, record.attempt, record.result) == (Status.SUCCEEDED, 2, {"ok": True})
        assert (record.created_at, record.started_at, record.finished_at) == (
            expected.created_at,
            expected.started_at,
            expected.finished_at,
        )
    rng = random.Random(7)
    for _ in range(200):
        noisy = [*LIFE, *rng.choices(LIFE, k=6)]
        rng.shuffle(noisy)
        record = merge_all(None, noisy)
        assert record is not None
        assert record.attempts == expected.attempts and record.status is Status.SUCCEEDED


def test_a_duplicate_changes_nothing_not_even_the_version() -> None:
    record = merge_all(None, LIFE)
    assert record is not None
    for event in LIFE:
        assert merge(record, event) is record


def test_a_late_running_of_attempt_1_after_success_of_attempt_2_changes_nothing() -> None:
    record = merge_all(None, LIFE)
    assert record is not None
    late = change(Status.RUNNING, 1, 5000)  # redelivered long after, say
    merged = merge(record, late)
    assert merged.status is Status.SUCCEEDED and merged.attempt == 2
    assert merged.attempts == record.attempts


def test_status_never_moves_backwards() -> None:
    running2 = merge_all(None, [QUEUED, change(Status.RUNNING, 2, 100)])
    assert running2 is not None
    assert merge(running2, change(Status.RETRYING, 1, 50)).status is Status.RUNNING
    assert merge(running2, change(Status.RUNNING, 1, 10)).status is Status.RUNNING
    assert merge(running2, QUEUED).status is Status.RUNNING


def test_the_gateway_overtaken_by_a_fast_consumer_still_fills_in_its_part() -> None:
    record = merge_all(None, [change(Status.RUNNING, 1, 10), change(Status.SUCCEEDED, 1, 20)])
    assert record is not None and record.submitter is None
    merged = merge(record, QUEUED)
    assert merged.status is Status.SUCCEEDED
    assert merged.created_at == T0 and merged.submitter == "alice"
    assert merged.version == record.version + 1


def test_the_first_final_status_stays() -> None:
    cancelled = merge_all(
        None, [QUEUED, change(Status.CANCELLED, 1, 10, reason="cancel-requested")]
    )
    assert cancelled is not None
    after = merge(cancelled, change(Status.SUCCEEDED, 1, 20, result=1))
    assert after.status is Status.CANCELLED and after.result is None
    assert after.reason == "cancel-requested"


def test_a_task_skipped_when_it_came_back_has_an_attempt_that_never_started() -> None:
    record = merge_all(
        None,
        [
            QUEUED,
            change(Status.RUNNING, 1, 10),
            change(Status.RETRYING, 1, 20, error_type="E", error="x"),
            change(Status.CANCELLED, 2, 1000, reason="cancel-requested"),
        ],
    )
    assert record is not None and record.status is Status.CANCELLED
    assert [(a.number, a.outcome, a.started_at) for a in record.attempts] == [
        (1, Status.RETRYING, T0 + timedelta(milliseconds=10)),
        (2, Status.CANCELLED, None),
    ]


def test_a_dead_task_keeps_its_reason_and_last_error() -> None:
    record = merge_all(
        None,
        [
            QUEUED,
            change(Status.RUNNING, 1, 10),
            change(Status.DEAD, 1, 20, reason="permanent", error_type="Permanent", error="no"),
        ],
    )
    assert record is not None
    assert (record.status, record.reason, record.error_type) == (
        Status.DEAD,
        "permanent",
        "Permanent",
    )
