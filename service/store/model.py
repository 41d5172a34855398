"""Tasks as Warren models them: ids, statuses, the changes that shape a record, the record.

A ``Change`` is one thing learned about a task: a consumer's lifecycle event,
or the gateway's own ``queued`` write. Records are only ever made by merging
changes (``warren.service.store.merge``), so one rule decides what a record says,
whichever replica or path the change came by. A lifecycle event on the wire is
a ``Change`` encoded (``warren.service.wire.events``), and the recorder decodes
it back into one: there is no second shape of an event.

This module imports nothing else of Warren: the wire formats, the store and
the API all build on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson
import uuid_utils
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

TASK_ID = re.compile(r"^[0-9a-f]{32}$")


def new_task_id() -> str:
    """A task id: 32 lowercase hex digits, the AMQP ``message_id`` too.

    A UUIDv7: its first 48 bits are the time in milliseconds, the rest random but for a
    counter that keeps the ids of one millisecond in order. Time-ordered ids go into the
    store's id index (SQLite and PostgreSQL B-trees alike) at its newest edge, and a task's
    later updates find those pages still cached; random ids (UUIDv4) put every insert on a
    random leaf, a page read and a page written per task once the index outgrows the cache
    (``benchmarks/store_ids.py``). The id tells when the task was made, to the millisecond,
    as its record's ``created_at`` does; it is still no capability (the task API checks the
    caller's key).
    """
    return uuid_utils.uuid7().hex


class Status(StrEnum):
    """Where a task is; also the last word of its events' routing keys."""

    QUEUED = "queued"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"


FINAL = frozenset({Status.SUCCEEDED, Status.DEAD, Status.CANCELLED})
ENDS_ATTEMPT = frozenset({Status.RETRYING, *FINAL})
MAX_ERROR_CHARS = 2000
REPLAYED = "replayed"  # the reason of the ``queued`` change a dead letter's replay writes
# Longest text a change keeps in these fields; longer is cut (see ``Change._text``).
TEXT_LIMITS = {
    "type": 200,
    "queue": 200,
    "trace_id": 64,
    "worker": 300,
    "error_type": 300,
    "reason": 200,
    "submitter": 200,
}


class Change(BaseModel):
    """One lifecycle event (``warren.service.wire.events``) or the gateway's ``queued`` write.

    Each one says everything a record needs to exist whole (task type, queue,
    attempts, trace, creation time, submitter), so whichever arrives first makes
    the record, owner included: the gateway's batched ``queued`` write may be
    lost with the gateway, and the task's events then rebuild its record.

    Unknown fields are ignored, so consumers may add to events without breaking
    recorders that are older than them.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    task_id: str = Field(pattern=TASK_ID.pattern)
    type: str = Field(max_length=TEXT_LIMITS["type"])
    queue: str = Field(max_length=TEXT_LIMITS["queue"])
    status: Status
    attempt: int = Field(ge=1)
    max_attempts: int = Field(ge=1)
    at: AwareDatetime
    trace_id: str | None = Field(None, max_length=TEXT_LIMITS["trace_id"])
    worker: str | None = Field(None, max_length=TEXT_LIMITS["worker"])
    # The broker flagged the delivery this run came from as a redelivery: an earlier
    # delivery of the same attempt may already have run (readers tell a repeated run
    # from a repeated event by it). Records do not keep it.
    redelivered: bool = False
    result: Any = None
    error_type: str | None = Field(None, max_length=TEXT_LIMITS["error_type"])
    error: str | None = None
    reason: str | None = Field(None, max_length=TEXT_LIMITS["reason"])
    next_delay_seconds: float | None = None
    # When the attempt started: on every event of a run (the outcome stands in for a
    # `running` event that short tasks skip); absent on events of tasks that never ran.
    started_at: AwareDatetime | None = None
    # From the envelope: the gateway's write and every event carry them (events of
    # consumers older than that do not; the record then takes them from another change).
    created_at: AwareDatetime | None = None
    submitter: str | None = Field(None, max_length=TEXT_LIMITS["submitter"])
    # A delayed task's due time: on the gateway's ``scheduled`` write (events need not repeat it).
    due_at: AwareDatetime | None = None

    @field_validator(
        "type",
        "queue",
        "trace_id",
        "worker",
        "error_type",
        "error",
        "reason",
        "submitter",
        mode="before",
    )
    @classmethod
    def _text(cls, value: Any, info: ValidationInfo) -> Any:
        """Text is cleaned, not refused: one odd field must not cost a record its event.

        NUL is valid in JSON but not in PostgreSQL text (the change would be
        unstorable); a value over its limit is cut, as the envelope's headers are.
        """
        if not isinstance(value, str):
            return value  # not text: the field's own validation says so
        if "\x00" in value:
            value = value.replace("\x00", "")
        limit = TEXT_LIMITS.get(info.field_name or "")
        return value if limit is None or len(value) <= limit else value[: limit - 1] + "…"

    @field_validator("result")
    @classmethod
    def _json(cls, value: Any) -> Any:
        if value is None or b"\\u0000" not in orjson.dumps(value, default=str):
            return value
        return orjson.loads(orjson.dumps(value, default=str).replace(b"\\u0000", b""))

    @property
    def dedup_key(self) -> str:
        """The event's ``message_id``: ``<task>.<attempt>.<status>``."""
        return f"{self.task_id}.{self.attempt}.{self.status.value}"


@dataclass(slots=True)
class AttemptRecord:
    """One attempt: when it started and ended, how it ended, and its error."""

    number: int
    started_at: datetime | None = None
    finished_at: datetime | None = None
    outcome: Status | None = None  # retrying, succeeded, dead or cancelled
    error_type: str | None = None
    error: str | None = None
    worker: str | None = None
    next_delay_seconds: float | None = None
    replayed_at: datetime | None = None  # this attempt came from a replay of the dead letter

    def to_json(self) -> dict[str, Any]:
        return {
            "attempt": self.number,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "outcome": self.outcome.value if self.outcome else None,
            "error_type": self.error_type,
            "error": self.error,
            "worker": self.worker,
            "next_delay_seconds": self.next_delay_seconds,
            "replayed_at": _iso(self.replayed_at),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AttemptRecord:
        return cls(
            number=int(data["attempt"]),
            started_at=_parse(data.get("started_at")),
            finished_at=_parse(data.get("finished_at")),
            outcome=Status(data["outcome"]) if data.get("outcome") else None,
            error_type=data.get("error_type"),
            error=data.get("error"),
            worker=data.get("worker"),
            next_delay_seconds=data.get("next_delay_seconds"),
            replayed_at=_parse(data.get("replayed_at")),
        )


@dataclass(slots=True)
class TaskRecord:
    """What is known of one task. ``version`` grows by one with every change that altered it.

    Treated as immutable (``merge`` builds new records and never alters one it
    was given), but not ``frozen``: a frozen dataclass's ``__init__`` costs
    ~20x more, and the recorder builds a record per change at full load.

    ``published`` is false only for an idempotency claim whose publish has not
    been confirmed yet; such rows are invisible to the API.
    """

    id: str
    type: str
    queue: str
    status: Status
    attempt: int
    max_attempts: int
    created_at: datetime
    updated_at: datetime
    version: int = 1
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result: Any = None
    error_type: str | None = None
    error: str | None = None
    reason: str | None = None
    trace_id: str | None = None
    submitter: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    published: bool = True
    cancel_requested_at: datetime | None = None
    attempts: tuple[AttemptRecord, ...] = ()
    due_at: datetime | None = None  # a delayed task: when it is due to run

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def to_json(self, *, history: bool = True) -> dict[str, Any]:
        """The API's view: no request hash, no internal flags."""
        body: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "queue": self.queue,
            "status": self.status.value,
            "attempt": self.attempt,
            "max_attempts": self.max_attempts,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "updated_at": _iso(self.updated_at),
            "result": self.result,
            "error_type": self.error_type,
            "error": self.error,
            "reason": self.reason,
            "trace_id": self.trace_id,
            "submitter": self.submitter,
            "cancel_requested_at": _iso(self.cancel_requested_at),
            "due_at": _iso(self.due_at),
            "version": self.version,
        }
        if history:
            body["attempts"] = [a.to_json() for a in self.attempts]
        return body


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
