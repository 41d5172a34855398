"""Gateway views. ``submit_task`` reads as its steps: validate → envelope → (idempotency) →
publish, confirmed → 202 (or, with ``?wait=S``, the final record if the task ends in time)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from aiohttp import web
from opentelemetry import trace

from warren.service.delays import publish_delayed
from warren.service.errors import PublishError, QueueFull
from warren.service.http.auth import CLIENT, authorize_type
from warren.service.http.idempotency import SubmissionClaim, claim_submission
from warren.service.http.keys import CATALOG, PUBLISHER, SETTINGS
from warren.service.http.priorities import check_priority
from warren.service.http.problems import Problem
from warren.service.http.submission import ValidSubmission, read_json, validate
from warren.service.http.task_reads import MAX_WAIT_SECONDS, float_param
from warren.service.http.task_records import json_response, record_json
from warren.service.http.task_store import RECORDER, store_behind
from warren.service.http.task_wait import final_record
from warren.service.http.tracing import name_task
from warren.service.metrics import SUBMISSIONS
from warren.service.store.model import new_task_id
from warren.service.telemetry import inject, prometheus_text, trace_id_hex
from warren.service.wire import Envelope


async def submit_task(request: web.Request) -> web.Response:
    """``POST /v1/tasks``: 202 once the broker has confirmed the task, never before; with
    ``?wait=S``, the final record (200) if the task ends within S seconds."""
    wait = float_param(request, "wait", 0.0, 0.0, MAX_WAIT_SECONDS)  # a 400 before anything
    valid = await _validated(request)
    authorize_type(request, valid.contract.name)  # 403 before anything is claimed or published
    if behind := await store_behind(request):  # the store is far behind the intake: 503
        raise behind
    envelope = build_envelope(valid, request[CLIENT].id)
    claim = await claim_submission(request, envelope, valid.due_at, valid.when)  # 200/409/go
    if claim.replay is not None:
        return claim.replay
    envelope, trace_id = await _publish(request, envelope, claim, valid.delay_seconds)
    await claim.record(envelope)
    SUBMISSIONS.add(1, {"type": envelope.type, "outcome": "accepted", "reason": ""})
    body = {
        "id": envelope.id,
        "type": envelope.type,
        "queue": envelope.queue,
        "status": "scheduled" if valid.due_at else "queued",
        "trace_id": trace_id,
        "created_at": envelope.created_at.isoformat(),
    }
    if valid.due_at:
        body["due_at"] = valid.due_at.isoformat()
    location = {"Location": f"/v1/tasks/{envelope.id}"}
    if wait and (record := await final_record(request, envelope.id, wait)) and record.final:
        return json_response(record_json(request, record), 200, location)
    return json_response(body, 202, location)


async def _validated(request: web.Request) -> ValidSubmission:
    """The submission, validated and normalised; a refusal is counted, then raised."""
    settings = request.app[SETTINGS]
    try:
        valid = validate(await read_json(request, settings.max_body_bytes), request.app[CATALOG])
        check_priority(valid, settings)  # 422 rather than a priority the queue would ignore
        return valid
    except Problem as problem:
        SUBMISSIONS.add(1, {"type": "(invalid)", "outcome": "rejected", "reason": problem.code})
        raise


async def _publish(
    request: web.Request, envelope: Envelope, claim: SubmissionClaim, delay_seconds: int = 0
) -> tuple[Envelope, str | None]:
    """Publish and wait for the confirm; the envelope and its trace id. The request's span
    is the task's parent (no span of its own: one per request). Not confirmed: 503, or 429
    when the queue is full, and the claim is released."""
    publisher = request.app[PUBLISHER]
    span = trace.get_current_span()
    name_task(envelope.id, envelope.type)
    try:
        if delay_seconds:  # onto the broker's delay ladder, never held by a process
            await publish_delayed(publisher, envelope, delay_seconds)
        else:
            await publisher.publish_task(envelope)
    except PublishError as exc:
        await claim.release()
        if span.is_recording():
            span.record_exception(exc)
        retry_after = request.app[SETTINGS].retry_after_seconds
        raise not_accepted(exc, envelope.type, retry_after) from None
    return envelope, trace_id_hex(span)


def not_accepted(exc: PublishError, task_type: str, retry_after: int) -> Problem:
    full = isinstance(exc, QueueFull)  # certainly not enqueued: back-pressure, 429
    code = "queue-full" if full else "broker-unavailable"
    SUBMISSIONS.add(1, {"type": task_type, "outcome": "unavailable", "reason": code})
    return Problem(
        429 if full else 503,
        code,
        "Too Many Requests" if full else "Service Unavailable",
        f"the task was not accepted: {exc}",
        headers={"Retry-After": str(retry_after)},
    )


def build_envelope(
    valid: ValidSubmission, submitter: str | None = None, context: Mapping[str, str] | None = None
) -> Envelope:
    """The envelope of a first attempt, carrying the current span's trace context: the
    request's span, the parent of the task's spans (an ``Idempotency-Key`` claim records
    the trace id before the publish). ``context``: that context injected already, as a
    batch does once for its tasks."""
    context = inject() if context is None else context
    return Envelope(
        id=new_task_id(),
        type=valid.contract.name,
        queue=valid.contract.queue,
        body=valid.payload_json,
        attempt=1,
        max_attempts=valid.max_attempts,
        timeout_seconds=valid.timeout_seconds,
        created_at=datetime.now(UTC),
        priority=valid.priority,
        traceparent=context.get("traceparent"),
        tracestate=context.get("tracestate"),
        submitter=submitter,
    )


async def task_types(request: web.Request) -> web.Response:
    return web.json_response(
        [
            {
                "name": c.name,
                "queue": c.queue,
                "description": c.description,
                "max_attempts": c.max_attempts,
                "max_attempts_cap": c.max_attempts_cap,
                "timeout_seconds": c.timeout_seconds,
                "timeout_cap_seconds": c.timeout_cap_seconds,
                "payload_schema": c.json_schema(),
            }
            for c in request.app[CATALOG].values()
        ]
    )


async def metrics(request: web.Request) -> web.Response:
    body, content_type = prometheus_text()
    return web.Response(body=body, headers={"Content-Type": content_type})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    publisher = request.app.get(PUBLISHER)
    if publisher is None or not publisher.ready:
        raise Problem(503, "not-ready", "Service Unavailable", "no broker connection")
    recorder = request.app.get(RECORDER)
    if recorder is not None and not recorder.healthy:
        raise Problem(503, "not-ready", "Service Unavailable", "the task recorder is restarting")
    return web.json_response({"status": "ready"})
