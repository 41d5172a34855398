"""The merge rules as pure functions: duplicates, any order, never backwards."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from warren.service.store import Change
from warren.service.store.merge import merge, merge_all
from warren.service.store.model import Status

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


def test_any_single_event_makes_a_whole_record() -> None:
    """The gateway's ``queued`` write can be lost with the gateway: then the task's events
    alone make its record, and whichever comes first says what the task is and whose."""
    for alone in LIFE[1:]:
        event = alone.model_copy(update={"created_at": T0, "submitter": "alice"})
        record = merge(None, event)
        assert (record.id, record.type, record.queue, record.max_attempts) == (
            TASK,
            "diag.flaky",
            "diag",
            3,
        )
        assert (record.created_at, record.submitter, record.trace_id) == (T0, "alice", "f" * 32)
        assert record.status is alone.status and record.published


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


def at(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


# A life with the short attempt's `running` skipped (it ended within the delay): its
# outcome carries started_at; the long second attempt published `running` late.
SKIPPED = [
    QUEUED,
    change(Status.RETRYING, 1, 20, started_at=at(10), error_type="E", error="x"),
    change(Status.RUNNING, 2, 1150, started_at=at(1100)),
    change(Status.SUCCEEDED, 2, 1300, started_at=at(1100), result=1),
]


def test_without_a_running_event_the_outcome_says_when_the_attempt_started() -> None:
    record = merge_all(None, [QUEUED, change(Status.SUCCEEDED, 1, 20, started_at=at(10))])
    assert record is not None and record.status is Status.SUCCEEDED
    assert record.started_at == at(10) and record.finished_at == at(20)
    (attempt,) = record.attempts
    assert (attempt.started_at, attempt.finished_at, attempt.outcome) == (
        at(10),
        at(20),
        Status.SUCCEEDED,
    )


def test_a_late_running_event_keeps_the_attempts_true_start_in_any_order() -> None:
    for order in itertools.permutations(SKIPPED):
        record = merge_all(None, order)
        assert record is not None
        assert (record.status, record.started_at) == (Status.SUCCEEDED, at(10))
        assert [(a.number, a.started_at, a.finished_at) for a in record.attempts] == [
            (1, at(10), at(20)),
            (2, at(1100), at(1300)),
        ]


def test_the_earliest_start_wins_between_a_running_event_and_an_outcome() -> None:
    old_running = change(Status.RUNNING, 1, 5)  # from a consumer that sends no started_at
    for order in itertools.permutations(
        [old_running, change(Status.SUCCEEDED, 1, 20, started_at=at(10))]
    ):
        record = merge_all(None, order)
        assert record is not None
        assert record.started_at == at(5) and record.attempts[0].started_at == at(5)


def test_a_repeated_end_still_fills_in_a_start_the_first_one_lacked() -> None:
    record = merge_all(None, [change(Status.SUCCEEDED, 1, 20)])  # from an older consumer
    assert record is not None and record.attempts[0].started_at is None
    merged = merge(record, change(Status.SUCCEEDED, 1, 20, started_at=at(10)))
    assert merged.started_at == at(10) and merged.attempts[0].started_at == at(10)
    assert merged.attempts[0].finished_at == at(20) and merged.version == record.version + 1


def test_an_event_of_a_task_that_never_ran_sets_no_start() -> None:
    record = merge_all(None, [QUEUED, change(Status.CANCELLED, 1, 10, reason="cancel-requested")])
    assert record is not None
    assert record.started_at is None and record.attempts[0].started_at is None
