"""``POST /v1/tasks/batch``: many submissions in one request, each with its own outcome.

The body is ``{"tasks": [submission, …]}`` (at most ``max_batch_tasks``), each a
``POST /v1/tasks`` body plus an optional ``idempotency_key`` (the header's role, per
task). The answer is ``200 {"items": […]}`` in the same order: each item the accepted
task, as a ``202`` would have said it, or ``{"problem": {…}}`` with the problem it
would have got alone (with ``retry_after`` where that problem's answer carries a
``Retry-After``). Only a body that is not a batch at all is refused whole.

The steps are the single submit's, per task: rate limit (a batch of N spends N
requests), size, validation, priority, task type allowed → envelope → keyed claims
(concurrently) → every publish written at once on the gateway's one channel (one
write: ``Publisher.send_batch``) and their confirms awaited together within the
publish timeout: one confirm window, so the broker round trip is paid once per
batch, not once per task → each confirmed
task recorded, each failed task's claim released. All or nothing per task: a task is
accepted only once confirmed, and a task not confirmed is not claimed.

Tracing: one PRODUCER span publishes the batch and every task's trace continues from
it (the tasks share its trace id); a span per task would cost more than its publish.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web
from opentelemetry import trace
from pydantic import BaseModel, ConfigDict, ValidationError

from warren.service.amqp import Publisher
from warren.service.coalesced import Outgoing
from warren.service.delays import route
from warren.service.errors import PublishError
from warren.service.http.auth import CLIENT, authorize_type
from warren.service.http.idempotency import (
    SubmissionClaim,
    check_key,
    claim_key,
    replay_body,
)
from warren.service.http.keys import CATALOG, PUBLISHER, SETTINGS
from warren.service.http.priorities import check_priority
from warren.service.http.problems import Problem
from warren.service.http.ratelimit import RATE_LIMITER, spend
from warren.service.http.submission import read_json, validate
from warren.service.http.task_records import json_response
from warren.service.http.task_store import store_behind
from warren.service.http.views import build_envelope, not_accepted
from warren.service.metrics import SUBMISSIONS
from warren.service.settings import Settings
from warren.service.telemetry import inject, trace_id_hex, tracer
from warren.service.wire import Envelope

Answer = dict[str, Any]


class BatchSubmission(BaseModel):
    """The body of ``POST /v1/tasks/batch``; its items are checked one by one, later."""

    model_config = ConfigDict(extra="forbid", strict=True)

    tasks: list[Any]


@dataclass
class Item:
    """One task of the batch on its way: where its answer goes, its envelope, its claim."""

    index: int
    envelope: Envelope
    key: str | None
    claim: SubmissionClaim | None = None
    delay_seconds: int = 0  # on the delay ladder (see ``warren.service.delays``)
    due_at: datetime | None = None
    when: str | None = None  # the delay as asked for: part of a key's fingerprint


async def submit_batch(request: web.Request) -> web.Response:
    """``POST /v1/tasks/batch``: 200 with one answer per task, once each is settled."""
    settings = request.app[SETTINGS]
    tasks = batch_tasks(await read_json(request, settings.max_batch_body_bytes), settings)
    answers: list[Answer] = [{} for _ in tasks]
    # A task can be larger than a single body may be only if the whole batch is.
    sized = len(await request.read()) > settings.max_body_bytes  # read: cached by aiohttp
    items = _prepared(request, tasks, answers, sized)
    if items and (behind := await store_behind(request)):  # each task's 503, as alone
        for item in items:
            answers[item.index] = problem_item(behind)
        return json_response({"items": answers})
    items = await _claimed(request, items, answers)
    if items:
        await _published(request, items, answers)
    return json_response({"items": answers})


def batch_tasks(data: Any, settings: Settings) -> list[Any]:
    """The batch's tasks, unchecked; a 422 for a body that is not a batch of 1 to N."""
    try:
        tasks = BatchSubmission.model_validate(data).tasks
    except ValidationError as exc:
        errors = [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
        raise _invalid(errors, 'send {"tasks": [submission, …]}') from None
    limit = settings.max_batch_tasks
    if not 1 <= len(tasks) <= limit:
        error = {"loc": ["tasks"], "msg": f"from 1 to {limit} tasks", "type": "batch_size"}
        raise _invalid([error], f"a batch holds 1 to {limit} tasks")
    return tasks


def _invalid(errors: list[Answer], detail: str) -> Problem:
    return Problem(422, "validation-failed", "Unprocessable Content", detail, errors=errors)


def problem_item(problem: Problem) -> Answer:
    """A task's answer when it was refused: its problem, as it would have been alone."""
    body = problem.body()
    if (after := problem.headers.get("Retry-After")) is not None:
        body["retry_after"] = int(after)
    return {"problem": body}


def _prepared(
    request: web.Request, tasks: list[Any], answers: list[Answer], sized: bool
) -> list[Item]:
    """Every task that passes its checks, as an envelope; the others answered already."""
    items: list[Item] = []
    keys: set[str] = set()
    refused: Counter[str] = Counter()
    context = inject()  # the request's trace context, the same for every task
    for index, raw in enumerate(tasks):
        try:
            items.append(_item(request, index, raw, keys, sized, context))
        except Problem as problem:
            answers[index] = problem_item(problem)
            refused[problem.code] += 1
    for code, count in refused.items():
        SUBMISSIONS.add(count, {"type": "(invalid)", "outcome": "rejected", "reason": code})
    return items


def _item(
    request: web.Request,
    index: int,
    raw: Any,
    keys: set[str],
    sized: bool,
    context: dict[str, str],
) -> Item:
    """One task checked as ``POST /v1/tasks`` checks a body, in the same order."""
    app = request.app
    settings = app[SETTINGS]
    if index:  # the request itself spent the first
        spend(app[RATE_LIMITER], request[CLIENT], settings)
    if sized and len(orjson.dumps(raw)) > settings.max_body_bytes:
        detail = f"limit is {settings.max_body_bytes} bytes"
        raise Problem(413, "body-too-large", "Content Too Large", detail)
    key = None
    if isinstance(raw, dict) and "idempotency_key" in raw:
        raw = dict(raw)
        given = raw.pop("idempotency_key")
        key = given if isinstance(given, str) else ""
    valid = validate(raw, app[CATALOG])
    check_priority(valid, settings)
    authorize_type(request, valid.contract.name)
    if key is not None:
        check_key(key)
        if key in keys:
            detail = "this idempotency_key is used by an earlier task of this batch"
            raise Problem(409, "idempotency-key-in-use", "Conflict", detail)
        keys.add(key)
    envelope = build_envelope(valid, request[CLIENT].id, context)
    delay, due_at, when = valid.delay_seconds, valid.due_at, valid.when
    return Item(index, envelope, key, delay_seconds=delay, due_at=due_at, when=when)


async def _claimed(request: web.Request, items: list[Item], answers: list[Answer]) -> list[Item]:
    """The items to publish: keyless ones, and keyed ones whose key is now theirs. A key
    used before answers with its original task (``replayed``), a conflict with its 409."""
    keyed = [item for item in items if item.key is not None]
    claims = await asyncio.gather(
        *(claim_key(request, item.envelope, item.key, item.due_at, item.when) for item in keyed),
        return_exceptions=True,
    )
    for item, claim in zip(keyed, claims, strict=True):
        if isinstance(claim, Problem):
            answers[item.index] = problem_item(claim)
        elif isinstance(claim, BaseException):
            raise claim
        elif claim.original is not None:
            answers[item.index] = {**replay_body(claim.original), "replayed": True}
        else:
            item.claim = claim
    app = request.app  # a property that costs, read once
    for item in items:
        if item.key is None:
            item.claim = SubmissionClaim(app, item.envelope.id, due_at=item.due_at)
    return [item for item in items if item.claim is not None]


async def _published(request: web.Request, items: list[Item], answers: list[Answer]) -> None:
    """Publish every item in one confirm window; record the confirmed, release the rest."""
    publisher = request.app[PUBLISHER]
    attributes: dict[str, str | int] = {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": "publish",
        "messaging.destination.name": publisher.work_exchange,
        "messaging.batch.message_count": len(items),
    }
    with tracer().start_as_current_span(
        "publish batch", kind=trace.SpanKind.PRODUCER, attributes=attributes
    ) as span:
        context = inject()
        for item in items:
            item.envelope = item.envelope.traced(context)
        failures = await _confirmed(request, items)
        if failures:
            span.set_status(trace.StatusCode.ERROR, f"{len(failures)} tasks not confirmed")
        trace_id = trace_id_hex(span)
    await _settled(request, items, failures, answers, trace_id)


async def _confirmed(request: web.Request, items: list[Item]) -> dict[int, PublishError]:
    """Publish every item at once (one write), then await all confirms within the publish
    timeout; the failed ones by item index (not confirmed in time, or not even written in
    time under a resource alarm: outcome unknown, as a single submit's 503)."""
    publisher = request.app[PUBLISHER]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + publisher.timeout
    unknown = f"no confirm within {publisher.timeout}s (outcome unknown)"
    try:
        async with asyncio.timeout_at(deadline):
            sent = await publisher.send_batch([_outgoing(publisher, item) for item in items])
    except TimeoutError:
        return {item.index: PublishError(unknown) for item in items}
    confirms = {item.index: confirm for item, confirm in zip(items, sent, strict=True)}
    _, late = await asyncio.wait(sent, timeout=max(0.0, deadline - loop.time()))
    for confirm in late:
        confirm.cancel()
    failures: dict[int, PublishError] = {}
    for index, confirm in confirms.items():
        if confirm in late:
            failures[index] = PublishError(unknown)
        elif isinstance(exc := confirm.exception(), PublishError):
            failures[index] = exc
        elif exc is not None:
            raise exc
    return failures


def _outgoing(publisher: Publisher, item: Item) -> Outgoing:
    """The publish of ``item``: to its work queue, or onto the delay ladder."""
    envelope = item.envelope
    exchange, key = route(publisher.names, envelope.queue, item.delay_seconds)
    return Outgoing(exchange, key, envelope.body, envelope.to_properties())


async def _settled(
    request: web.Request,
    items: list[Item],
    failures: dict[int, PublishError],
    answers: list[Answer],
    trace_id: str | None,
) -> None:
    """Each item's answer; the confirmed recorded, the failed released. Keyed claims are
    store writes, settled concurrently; a keyless claim's record only hands the ``queued``
    change to the recorder's batch, so it is awaited in line (it never suspends: a task
    for each would cost more than the record)."""
    retry_after = request.app[SETTINGS].retry_after_seconds
    keyed = []
    accepted: Counter[str] = Counter()
    for item in items:
        claim, envelope = item.claim, item.envelope
        assert claim is not None
        if (failure := failures.get(item.index)) is not None:
            answers[item.index] = problem_item(not_accepted(failure, envelope.type, retry_after))
            settle = claim.release()
        else:
            answers[item.index] = _accepted(envelope, trace_id, item.due_at)
            accepted[envelope.type] += 1
            settle = claim.record(envelope)
        if claim.key is None:
            await settle
        else:
            keyed.append(settle)
    await asyncio.gather(*keyed)
    for task_type, count in accepted.items():
        SUBMISSIONS.add(count, {"type": task_type, "outcome": "accepted", "reason": ""})


def _accepted(envelope: Envelope, trace_id: str | None, due_at: datetime | None) -> Answer:
    """An accepted task, as a ``202`` of ``POST /v1/tasks`` says it."""
    answer: Answer = {
        "id": envelope.id,
        "type": envelope.type,
        "queue": envelope.queue,
        "status": "scheduled" if due_at else "queued",
        "trace_id": trace_id,
        "created_at": envelope.created_at.isoformat(),
    }
    if due_at:
        answer["due_at"] = due_at.isoformat()
    return answer
