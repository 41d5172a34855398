"""The gateway's response bodies as pydantic models, for its OpenAPI document only.

The views build their bodies as plain dicts (the hot path stays free of model
validation); these models describe exactly those dicts, and the fuzz tests
check every real response against them, so a view and its model cannot drift
apart unnoticed.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from warren.service.store.model import TASK_ID, Status

TaskId = Annotated[str, Field(pattern=TASK_ID.pattern, description="32 lowercase hex digits.")]


class FieldError(BaseModel):
    """Where a submission is wrong; the input is never echoed (it may hold secrets)."""

    loc: list[str | int] = Field(description="Path to the offending member, [] for the body.")
    msg: str
    type: str = Field(description="Stable machine-readable error type.")


class ProblemDetails(BaseModel):
    """RFC 9457 ``application/problem+json``: every error the gateway answers."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="`/problems/{code}`.")
    title: str
    status: int = Field(ge=400, le=599)
    code: str = Field(description="Stable machine-readable code a client can branch on.")
    detail: str | None = None
    instance: str | None = Field(None, description="The request path.")
    errors: list[FieldError] | None = Field(None, description="Validation failures (422, 400).")
    retry_after: int | None = Field(
        None, description="A batch task's problem: the `Retry-After` its own answer would carry."
    )


class TaskAccepted(BaseModel):
    """``POST /v1/tasks``: 202 for a new task, 200 for an ``Idempotency-Key`` replay."""

    id: TaskId
    type: str
    queue: str
    status: Status = Field(
        description="`queued` for a new task, `scheduled` for a delayed one; a replay says "
        "where it is now."
    )
    trace_id: str | None = Field(description="W3C trace id of the submission, if traced.")
    created_at: AwareDatetime
    due_at: AwareDatetime | None = Field(None, description="A delayed task's due time.")


class BatchTaskAccepted(TaskAccepted):
    """A task of a batch, accepted (or, its ``idempotency_key`` used before, the original)."""

    replayed: bool = Field(False, description="The original task of a key used before.")


class TaskRefused(BaseModel):
    """A task of a batch, refused: the problem it would have got alone. Nothing published."""

    problem: ProblemDetails


class BatchAnswer(BaseModel):
    """``POST /v1/tasks/batch``: one item per task, in the order of the batch."""

    items: list[BatchTaskAccepted | TaskRefused]


class TaskTypeInfo(BaseModel):
    """One entry of ``GET /v1/task-types``: a contract and its payload's JSON Schema."""

    name: str
    queue: str
    description: str
    max_attempts: int
    max_attempts_cap: int
    timeout_seconds: float
    timeout_cap_seconds: float
    payload_schema: dict[str, Any]


class AttemptBody(BaseModel):
    attempt: int = Field(ge=1)
    started_at: AwareDatetime | None
    finished_at: AwareDatetime | None
    outcome: Status | None
    error_type: str | None
    error: str | None
    worker: str | None
    next_delay_seconds: float | None
    replayed_at: AwareDatetime | None = Field(
        None, description="Set when this attempt came from a replay of the dead letter."
    )


class TaskRecordBody(BaseModel):
    """What is known of one task (``GET /v1/tasks/{id}``, and the items of a list)."""

    id: TaskId
    type: str
    queue: str
    status: Status
    attempt: int = Field(ge=1)
    max_attempts: int = Field(ge=1)
    created_at: AwareDatetime | None
    started_at: AwareDatetime | None
    finished_at: AwareDatetime | None
    updated_at: AwareDatetime | None
    result: Any = Field(description="The handler's result, once succeeded.")
    error_type: str | None
    error: str | None
    reason: str | None
    trace_id: str | None
    submitter: str | None
    cancel_requested_at: AwareDatetime | None
    due_at: AwareDatetime | None = Field(None, description="A delayed task's due time.")
    version: int = Field(ge=1, description="Grows by one with every change; the SSE event id.")
    attempts: list[AttemptBody] | None = Field(
        None, description="Attempt history (single records only, not list items)."
    )
    trace_url: str | None = Field(None, description="Jaeger UI link, when configured.")


class TaskPage(BaseModel):
    items: list[TaskRecordBody]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class ScheduleState(BaseModel):
    """One schedule (``warren.Schedule``): when it fires, and its last and next tick."""

    id: str
    type: str = Field(description="The task type it submits.")
    cron: str | None
    every_seconds: float | None
    timezone: str
    missed: Literal["skip", "last"] = Field(description="After downtime: skip, or run the last.")
    submitter: str = Field(description="The client its tasks belong to.")
    last_tick: AwareDatetime | None = Field(description="The latest tick fired (recent ones).")
    last_task_id: TaskId | None
    last_status: Status | None
    next_tick: AwareDatetime


class SchedulePage(BaseModel):
    items: list[ScheduleState]


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]


RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    ProblemDetails,
    TaskAccepted,
    BatchAnswer,
    TaskTypeInfo,
    TaskRecordBody,
    TaskPage,
    SchedulePage,
    Health,
    Ready,
)
