"""The "never moves backwards" rules: how a change folds into a record. Pure functions.

Events arrive twice (redelivery, a consumer that crashed before its ack) and
out of order (several recorders, retries, a fast consumer overtaking the
gateway's own ``queued`` write). So a record's position is a rank, not the
last thing heard:

* a task's progress is ``(attempt, phase)`` with phases
  scheduled < queued < running < retrying < final; a change moves the status
  only to a higher position (``running`` of attempt 2 is past ``retrying`` of
  attempt 1, which is past ``running`` of attempt 1);
* a final status (succeeded, dead, cancelled) absorbs: the first one recorded
  stays, whatever arrives later; except that a replayed dead letter reopens its
  ``dead`` task: a change of a later attempt moves it on (the replay publishes
  attempt n+1 with a ``queued`` change of reason ``replayed``), and a death of
  an attempt from before the replay no longer ends it;
* the attempt history merges per attempt number: the earliest start, the first
  end; fields only ever go from unknown to known. A start comes from an event's
  ``started_at`` (every event of a run has it: short tasks publish no
  ``running``), or, from older consumers, from a ``running`` event's time;
* what a task is (type, queue, attempts allowed, trace, submitter) comes from
  the first change that says it, its creation time is the earliest said. Every
  change says all of it (events carry the envelope's creation time and
  submitter), so whichever change arrives first makes a whole record: the
  owner sees a task whose gateway died before writing ``queued``.

Merging the same change twice gives the same record, and any order of one
task's events gives the same record (only two *different* final events of one
task, which a correct pipeline never emits, depend on order).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from warren.service.store.model import (
    ENDS_ATTEMPT,
    FINAL,
    MAX_ERROR_CHARS,
    REPLAYED,
    AttemptRecord,
    Change,
    Status,
    TaskRecord,
)

PHASE = {
    Status.SCHEDULED: 0,
    Status.QUEUED: 1,
    Status.RUNNING: 2,
    Status.RETRYING: 3,
    Status.SUCCEEDED: 4,
    Status.DEAD: 4,
    Status.CANCELLED: 4,
}


def progress(status: Status, attempt: int) -> tuple[int, int]:
    """Where a task is in its life; higher is later."""
    return (attempt, PHASE[status])


def merge(record: TaskRecord | None, change: Change) -> TaskRecord:
    """``record`` with ``change`` folded in; the same object when nothing changed."""
    base = record if record is not None else _new(change)
    status = _next_status(base, change)
    reopened = _reopens(base, change)
    ends_now = status in FINAL and (base.status not in FINAL or reopened)
    kept = not reopened  # a reopened task forgets how its earlier run ended
    attempts = merge_attempts(base.attempts, change)
    error_type, error = last_error(attempts)
    merged = TaskRecord(  # built whole, not with dataclasses.replace: this is the hot loop
        id=base.id,
        type=base.type,
        queue=base.queue,
        status=status,
        attempt=max(base.attempt, change.attempt),
        max_attempts=max(base.max_attempts, change.max_attempts),  # a replay grows it
        created_at=min(base.created_at, change.created_at or change.at),
        updated_at=max(base.updated_at, change.at),
        version=base.version,
        started_at=_earliest(base.started_at, _started(change)),
        finished_at=change.at if ends_now else (base.finished_at if kept else None),
        result=_result(base, change, status, ends_now, kept),
        error_type=error_type,
        error=error,
        reason=change.reason if ends_now else (base.reason if kept else None),
        trace_id=base.trace_id or change.trace_id,
        submitter=base.submitter or change.submitter,
        idempotency_key=base.idempotency_key,
        request_hash=base.request_hash,
        published=True,  # the gateway writes `queued` after the confirm; events prove a run
        cancel_requested_at=base.cancel_requested_at,
        attempts=attempts,
        due_at=base.due_at or change.due_at,
    )
    if record is None:
        return merged
    if merged == record:
        return record
    merged.version += 1  # a fresh object, not yet seen by anyone
    return merged


def merge_all(record: TaskRecord | None, changes: Iterable[Change]) -> TaskRecord | None:
    for change in changes:
        record = merge(record, change)
    return record


def _new(change: Change) -> TaskRecord:
    """A blank record before any progress (attempt 0), which ``change`` then moves."""
    return TaskRecord(
        id=change.task_id,
        type=change.type,
        queue=change.queue,
        status=Status.SCHEDULED,
        attempt=0,
        max_attempts=change.max_attempts,
        created_at=change.created_at or change.at,
        updated_at=change.at,
        version=1,
    )


def _result(base: TaskRecord, change: Change, status: Status, ends_now: bool, kept: bool) -> Any:
    if ends_now and status is Status.SUCCEEDED:
        return change.result
    return base.result if kept else None


def _reopens(record: TaskRecord, change: Change) -> bool:
    """A dead task's replay: a change of an attempt after the one that died."""
    return record.status is Status.DEAD and change.attempt > record.attempt


def _replayed_from(record: TaskRecord) -> int:
    """The first attempt of the latest replay (0: never replayed)."""
    return max((a.number for a in record.attempts if a.replayed_at is not None), default=0)


def _next_status(record: TaskRecord, change: Change) -> Status:
    if record.status in FINAL:
        return change.status if _reopens(record, change) else record.status
    if change.status in FINAL:
        if change.attempt < _replayed_from(record):
            return record.status  # a late death of a run from before the replay
        return change.status
    if progress(change.status, change.attempt) > progress(record.status, record.attempt):
        return change.status
    return record.status


def merge_attempts(history: tuple[AttemptRecord, ...], change: Change) -> tuple[AttemptRecord, ...]:
    """The history with ``change``'s attempt updated; queued/scheduled leave it alone."""
    if change.status is Status.QUEUED and change.reason == REPLAYED:
        return _replayed(history, change)
    if change.status not in ENDS_ATTEMPT and change.status is not Status.RUNNING:
        return history
    by_number = {a.number: a for a in history}
    current = by_number.get(change.attempt, AttemptRecord(change.attempt))
    by_number[change.attempt] = _merge_attempt(current, change)
    return tuple(by_number[n] for n in sorted(by_number))


def _replayed(history: tuple[AttemptRecord, ...], change: Change) -> tuple[AttemptRecord, ...]:
    """The history with the replayed attempt marked (the first replay of it stands)."""
    by_number = {a.number: a for a in history}
    current = by_number.get(change.attempt, AttemptRecord(change.attempt))
    if current.replayed_at is not None:
        return history
    by_number[change.attempt] = replace(current, replayed_at=change.at)
    return tuple(by_number[n] for n in sorted(by_number))


def _merge_attempt(attempt: AttemptRecord, change: Change) -> AttemptRecord:
    worker = attempt.worker or change.worker
    started = _earliest(attempt.started_at, _started(change))
    if change.status is Status.RUNNING or attempt.outcome is not None:
        # a start only, or a repeated end: the first end of an attempt stands
        if started == attempt.started_at and worker == attempt.worker:
            return attempt
        return replace(attempt, started_at=started, worker=worker)
    return AttemptRecord(
        number=attempt.number,
        started_at=started,
        finished_at=change.at,
        outcome=change.status,
        error_type=change.error_type,
        error=_bounded(change.error),
        worker=worker,
        next_delay_seconds=change.next_delay_seconds,
        replayed_at=attempt.replayed_at,
    )


def last_error(history: tuple[AttemptRecord, ...]) -> tuple[str | None, str | None]:
    """The error of the latest attempt that had one."""
    for attempt in reversed(history):
        if attempt.error_type or attempt.error:
            return attempt.error_type, attempt.error
    return None, None


def _started(change: Change) -> datetime | None:
    """When ``change``'s attempt started, if it says: ``started_at``, else a ``running``'s time."""
    if change.started_at is not None:
        return change.started_at
    return change.at if change.status is Status.RUNNING else None


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return min(a, b)


def _bounded(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_ERROR_CHARS:
        return text
    return text[: MAX_ERROR_CHARS - 1] + "…"
