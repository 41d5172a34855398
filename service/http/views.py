"""Gateway views. ``submit_task`` reads as its steps: validate → (idempotency) → envelope →
publish → record → 202."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web
from opentelemetry import trace

from warren.service.errors import PublishError, QueueFull
from warren.service.http.auth import authorize_type
from warren.service.http.keys import CATALOG, PUBLISHER, SETTINGS
from warren.service.http.problems import Problem
from warren.service.http.submission import ValidSubmission, read_json, validate
from warren.service.http.task_views import claim_submission
from warren.service.http.tracing import publish_attributes
from warren.service.metrics import SUBMISSIONS
from warren.service.store.model import new_task_id
from warren.service.telemetry import inject, prometheus_text, trace_id_hex, tracer
from warren.service.wire import Envelope


async def submit_task(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    try:
        valid = validate(await read_json(request, settings.max_body_bytes), request.app[CATALOG])
    except Problem as problem:
        SUBMISSIONS.add(1, {"type": "(invalid)", "outcome": "rejected", "reason": problem.code})
        raise
    authorize_type(request, valid.contract.name)  # 403 before anything is claimed or published
    claim = await claim_submission(request, valid)  # with an Idempotency-Key: the key, or 200/409
    if claim.replay is not None:
        return claim.replay
    queue = valid.contract.queue
    exchange = request.app[PUBLISHER].work_exchange
    attributes = publish_attributes(exchange, queue, claim.task_id, valid.contract.name)
    with tracer().start_as_current_span(
        f"publish {queue}", kind=trace.SpanKind.PRODUCER, attributes=attributes
    ) as span:
        envelope = build_envelope(valid, claim.task_id, claim.submitter)
        try:
            await request.app[PUBLISHER].publish_task(envelope)
        except PublishError as exc:
            await claim.release()
            span.record_exception(exc)
            span.set_status(trace.StatusCode.ERROR, str(exc))
            full = isinstance(exc, QueueFull)  # certainly not enqueued: back-pressure, 429
            code = "queue-full" if full else "broker-unavailable"
            SUBMISSIONS.add(1, {"type": envelope.type, "outcome": "unavailable", "reason": code})
            raise Problem(
                429 if full else 503,
                code,
                "Too Many Requests" if full else "Service Unavailable",
                f"the task was not accepted: {exc}",
                headers={"Retry-After": str(settings.retry_after_seconds)},
            ) from None
        trace_id = trace_id_hex(span)
    await claim.record(envelope)
    SUBMISSIONS.add(1, {"type": envelope.type, "outcome": "accepted", "reason": ""})
    body = {
        "id": envelope.id,
        "type": envelope.type,
        "queue": queue,
        "status": "queued",
        "trace_id": trace_id,
        "created_at": envelope.created_at.isoformat(),
    }
    return web.json_response(body, status=202, headers={"Location": f"/v1/tasks/{envelope.id}"})


def build_envelope(
    valid: ValidSubmission, task_id: str | None = None, submitter: str | None = None
) -> Envelope:
    """The envelope of a first attempt, carrying the current (publish) span's trace context."""
    context = inject()
    return Envelope(
        id=task_id or new_task_id(),
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
    return web.json_response({"status": "ready"})
