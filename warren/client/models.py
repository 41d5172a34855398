"""The gateway's answers as typed values: an accepted task, a task record, a page of them.

Frozen pydantic models that ignore fields they do not know, so a client keeps
working against a newer gateway that adds some. ``Status`` repeats the server's
statuses (a test keeps them equal) so that the client needs no broker library.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["Attempt", "Status", "TaskAccepted", "TaskPage", "TaskRecord"]


class Status(StrEnum):
    """Where a task is. ``succeeded``, ``dead`` and ``cancelled`` are final."""

    QUEUED = "queued"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        """True once nothing more will happen to the task."""
        return self in _FINAL


_FINAL = frozenset({Status.SUCCEEDED, Status.DEAD, Status.CANCELLED})


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class TaskAccepted(_Body):
    """The answer to a submission: the task's id and the trace it runs in.

    ``replayed`` is true when an ``Idempotency-Key`` named a task submitted before:
    this is that task (``status`` says where it is now) and nothing was published.
    ``idempotency_key`` is the key sent, generated or given, to reuse on a retry.
    """

    id: str
    type: str
    queue: str
    status: Status
    trace_id: str | None = None
    created_at: datetime
    due_at: datetime | None = None  # a delayed task: ``scheduled`` until then
    replayed: bool = False
    idempotency_key: str | None = None


class Attempt(_Body):
    """One run of a task: when, by whom, how it ended, and the delay before the next."""

    attempt: int
    started_at: datetime | None = None
    finished_at: datetime | None = None
    outcome: Status | None = None
    error_type: str | None = None
    error: str | None = None
    worker: str | None = None
    next_delay_seconds: float | None = None


class TaskRecord(_Body):
    """What is known of one task (``get``, ``wait``, ``events`` and the items of ``list``).

    ``result`` is the handler's return value once ``succeeded``; ``reason``, ``error_type``
    and ``error`` say why a task retried or died. ``version`` grows with every change.
    ``attempts`` is the history of runs; list items carry none (``None``).
    """

    id: str
    type: str
    queue: str
    status: Status
    attempt: int
    max_attempts: int
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None
    result: Any = None
    error_type: str | None = None
    error: str | None = None
    reason: str | None = None
    trace_id: str | None = None
    submitter: str | None = None
    cancel_requested_at: datetime | None = None
    due_at: datetime | None = None
    version: int
    attempts: list[Attempt] | None = None
    trace_url: str | None = None

    @property
    def final(self) -> bool:
        """True once the task succeeded, died or was cancelled."""
        return self.status.final


class TaskPage(_Body):
    """One page of ``GET /v1/tasks``, newest first; ``next_cursor`` fetches the next."""

    items: list[TaskRecord]
    next_cursor: str | None = None
