"""The task lifecycle API: records, long-poll, Server-Sent Events, cancellation, idempotency.

``add_task_routes(app)`` registers the routes and the ``task_store``
resource (store + recorder + waiters), and ``submit_task`` calls two
functions from here: ``claim_submission`` (before the envelope) and the
returned claim's ``release`` / ``record`` (after the publish).

The 202 path stays free of database round trips unless the client sent an
``Idempotency-Key``: the gateway's ``queued`` write joins the recorder's next
batch, and until it is written this replica answers for the task from the
recorder's memory. A keyed submission needs the database to be the arbiter,
so it costs two writes: the claim (insert-first on ``(submitter, key)``)
before the publish, and its publication after.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from opentelemetry import trace

from warren.service.envelope import TASK_ID, Envelope, new_task_id
from warren.service.errors import PublishError
from warren.service.events import Status
from warren.service.http.auth import CLIENT
from warren.service.http.keys import BROKER, PUBLISHER, SETTINGS
from warren.service.http.problems import Problem
from warren.service.http.submission import ValidSubmission
from warren.service.recorder import Recorder
from warren.service.store import Change, ListQuery, TaskRecord, TaskStore, open_store
from warren.service.store.control import cancel_message
from warren.service.store.db import StoreUnavailable
from warren.service.store.merge import merge
from warren.service.store.sql import decode_cursor
from warren.service.store.watch import Watchers
from warren.service.telemetry import trace_id_hex

log = logging.getLogger(__name__)

STORE = web.AppKey("task_store", TaskStore)
RECORDER = web.AppKey("recorder", Recorder)
WATCHERS = web.AppKey("watchers", Watchers)

IDEMPOTENCY_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")
MAX_WAIT_SECONDS = 60.0
MAX_PAGE = 500
SSE_HEARTBEAT_SECONDS = 15.0
STALE_CLAIM_SECONDS = 30.0


# --- resources and routes ---------------------------------------------------


async def task_store(app: web.Application) -> AsyncIterator[None]:
    """Store, waiters and recorder for the app's life; the recorder has its own connection."""
    settings = app[SETTINGS]
    store = await open_store(settings.store_url)
    watchers = Watchers()
    store.subscribe(watchers.changed)
    recorder = Recorder(store, settings)
    link = app[BROKER].link("gateway-recorder", recorder.start)  # starts once linked
    try:
        await link.start()
        app[STORE], app[RECORDER], app[WATCHERS] = store, recorder, watchers
        yield
    finally:
        watchers.close()
        await recorder.close()
        await link.close()
        await store.close()


async def _release_waiters(app: web.Application) -> None:
    """On shutdown, before aiohttp waits for handlers: long-polls answer, streams end."""
    if WATCHERS in app:
        app[WATCHERS].close()


def add_task_routes(app: web.Application) -> None:
    app.cleanup_ctx.append(task_store)
    app.on_shutdown.append(_release_waiters)
    app.router.add_get("/v1/tasks", list_tasks)
    app.router.add_get("/v1/tasks/{id}", get_task)
    app.router.add_get("/v1/tasks/{id}/events", task_events)
    app.router.add_delete("/v1/tasks/{id}", cancel_task)


# --- reading ------------------------------------------------------------------


async def _read(request: web.Request, task_id: str) -> TaskRecord | None:
    """The stored record, else the one this replica accepted but has not written yet.

    Another client's task is None too: to this client it does not exist.
    """
    if not TASK_ID.match(task_id):
        return None
    app = request.app
    unwritten = app[RECORDER].unflushed(task_id)  # before the read: it may be written meanwhile
    try:
        record = await app[STORE].get(task_id)
    except StoreUnavailable as exc:
        raise _store_problem(exc) from None
    record = record or unwritten or app[RECORDER].unflushed(task_id)
    return record if record is not None and request[CLIENT].may_see(record.submitter) else None


async def _existing(request: web.Request) -> tuple[str, TaskRecord]:
    task_id = request.match_info["id"]
    record = await _read(request, task_id)
    if record is None:
        raise _not_found(task_id)
    return task_id, record


def _not_found(task_id: str) -> Problem:
    return Problem(404, "not-found", "Not Found", f"no task {task_id}")


def _record_json(request: web.Request, record: TaskRecord, *, history: bool = True) -> Any:
    body = record.to_json(history=history)
    ui = request.app[SETTINGS].jaeger_ui_url
    if ui and record.trace_id:
        body["trace_url"] = f"{ui.rstrip('/')}/trace/{record.trace_id}"
    return body


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )


def _store_problem(exc: Exception) -> Problem:
    log.warning("task store unavailable: %s", exc)
    return Problem(
        503,
        "store-unavailable",
        "Service Unavailable",
        "the task store cannot be reached",
        headers={"Retry-After": "1"},
    )


async def get_task(request: web.Request) -> web.Response:
    """``GET /v1/tasks/{id}[?wait=S]``: with ``wait``, answer once final or after S seconds.

    With ``wait``, an id not known yet is waited for as well: a task another
    replica accepted a moment ago may not be written yet. Past the wait it is a 404.
    """
    wait = _float_param(request, "wait", 0.0, 0.0, MAX_WAIT_SECONDS)
    task_id = request.match_info["id"]
    with request.app[WATCHERS].watch(task_id) as watch:  # before reading: no lost wake-up
        record = await _read(request, task_id)
        deadline = _now() + (wait if TASK_ID.match(task_id) else 0.0)
        while not (record and record.final) and not watch.closed:
            if (left := deadline - _now()) <= 0:
                break
            if await watch.wait(left):
                record = await _read(request, task_id) or record
    if record is None:
        raise _not_found(task_id)
    return _json(_record_json(request, record))


async def list_tasks(request: web.Request) -> web.Response:
    """``GET /v1/tasks?status=&type=&queue=&since=&limit=&cursor=``: newest first."""
    query = _list_query(request)
    try:
        page = await request.app[STORE].list(query)
    except StoreUnavailable as exc:
        raise _store_problem(exc) from None
    items = [_record_json(request, r, history=False) for r in page.items]
    return _json({"items": items, "next_cursor": page.next_cursor})


def _list_query(request: web.Request) -> ListQuery:
    params = request.query
    try:
        statuses = tuple(Status(s) for s in params.get("status", "").split(",") if s)
    except ValueError:
        raise _bad_param("status", f"one or more of {', '.join(s.value for s in Status)}") from None
    since = None
    if "since" in params:
        try:
            since = datetime.fromisoformat(params["since"])
        except ValueError:
            raise _bad_param("since", "an ISO 8601 time") from None
        if since.tzinfo is None:
            raise _bad_param("since", "a time with its UTC offset")
    cursor = params.get("cursor") or None
    if cursor is not None:
        try:
            decode_cursor(cursor)
        except ValueError:
            raise _bad_param("cursor", "a next_cursor of an earlier page") from None
    return ListQuery(
        statuses=statuses,
        type=params.get("type") or None,
        queue=params.get("queue") or None,
        since=since,
        limit=int(_float_param(request, "limit", 50, 1, MAX_PAGE)),
        cursor=cursor,
        submitter=None if request[CLIENT].sees_all else request[CLIENT].id,
    )


def _float_param(request: web.Request, name: str, default: float, low: float, high: float) -> float:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        raise _bad_param(name, f"a number from {low:g} to {high:g}")
    return value


def _bad_param(name: str, wanted: str) -> Problem:
    return Problem(
        400,
        "invalid-parameter",
        "Bad Request",
        f"{name} must be {wanted}",
        errors=[{"loc": ["query", name], "msg": f"must be {wanted}", "type": "invalid"}],
    )


def _now() -> float:
    return time.monotonic()


# --- Server-Sent Events --------------------------------------------------------


async def task_events(request: web.Request) -> web.StreamResponse:
    """``GET /v1/tasks/{id}/events``: the record at once, then at each change, until final.

    An ``EventSource`` reconnects when a stream ends; coming back with the
    final version as ``Last-Event-ID`` it gets 204, which tells it to stop.
    """
    with request.app[WATCHERS].watch(request.match_info["id"]) as watch:
        task_id, record = await _existing(request)
        if record.final and request.headers.get("Last-Event-ID") == str(record.version):
            return web.Response(status=204)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # proxies must not buffer the stream
            }
        )
        await response.prepare(request)
        sent = -1
        try:
            while True:
                if record.version != sent:
                    await _send_event(response, _record_json(request, record))
                    sent = record.version
                if record.final or watch.closed:
                    break
                if await watch.wait(SSE_HEARTBEAT_SECONDS):
                    record = await _read(request, task_id) or record
                else:
                    await response.write(b": keep-alive\n\n")
            await response.write_eof()
        except (ConnectionResetError, Problem):  # the client left, or the store did
            pass
    return response


async def _send_event(response: web.StreamResponse, body: dict[str, Any]) -> None:
    """One unnamed event (so ``EventSource.onmessage`` gets it): the record, its version as id."""
    await response.write(b"id: %d\ndata: %s\n\n" % (body["version"], orjson.dumps(body)))


# --- cancellation -------------------------------------------------------------


async def cancel_task(request: web.Request) -> web.Response:
    """``DELETE /v1/tasks/{id}``: 202 while the cancellation travels, 409 once finished.

    The broadcast goes first: only once the broker confirmed it is the request
    noted on the record. The record turns ``cancelled`` when a consumer acts
    on it (skips the delivery, or stops the running attempt) and says so.
    """
    task_id, record = await _existing(request)
    if record.status is Status.CANCELLED:
        return _json(_record_json(request, record))
    if record.final:
        raise Problem(
            409,
            "task-finished",
            "Conflict",
            f"the task is already {record.status.value}; there is nothing to cancel",
        )
    try:
        await request.app[PUBLISHER].publish(
            request.app[PUBLISHER].names.control_exchange, cancel_message(task_id), ""
        )
    except PublishError as exc:
        raise Problem(
            503,
            "broker-unavailable",
            "Service Unavailable",
            f"the cancellation was not sent: {exc}",
            headers={"Retry-After": str(request.app[SETTINGS].retry_after_seconds)},
        ) from None
    return _json(_record_json(request, await _note_cancel(request.app, record)), status=202)


async def _note_cancel(app: web.Application, record: TaskRecord) -> TaskRecord:
    store = app[STORE]
    try:
        if unwritten := app[RECORDER].unflushed(record.id):  # accepted moments ago
            await store.apply(_changes_of(unwritten))
        noted = await store.request_cancel(record.id, datetime.now(UTC))
    except StoreUnavailable as exc:  # sent all the same: consumers will act on it
        log.warning("cancellation of %s sent but not noted: %s", record.id, exc)
        noted = None
    return noted or record


def _changes_of(record: TaskRecord) -> list[Change]:
    return [
        _queued_change(
            record.id,
            record.type,
            record.queue,
            record.max_attempts,
            record.created_at,
            record.trace_id,
            record.submitter,
        )
    ]


# --- submission: idempotency and the queued write ---------------------------------


def client_of(request: web.Request) -> str:
    """Who submitted, which scopes idempotency keys: the API key's id (``warren.service.http.auth``;
    with authentication off, ``X-Warren-Client`` or ``anonymous``)."""
    return request[CLIENT].id


@dataclass
class SubmissionClaim:
    """One submission's task id and, with an ``Idempotency-Key``, its claim on that key."""

    app: web.Application
    task_id: str
    submitter: str
    key: str | None = None
    replay: web.Response | None = None  # the original task, when the key was used before

    async def release(self) -> None:
        """The publish failed: free the key, so a retry with it can succeed."""
        if self.key is not None:
            try:
                await self.app[STORE].release(self.task_id)
            except StoreUnavailable as exc:  # stale claims are taken over later
                log.warning("idempotency claim %s not released: %s", self.task_id, exc)

    async def record(self, envelope: Envelope) -> None:
        """The gateway's ``queued`` write: batched, or for a keyed claim, written now."""
        change = _queued_change(
            envelope.id,
            envelope.type,
            envelope.queue,
            envelope.max_attempts,
            envelope.created_at,
            envelope.trace_id,
            envelope.submitter,
        )
        if self.key is not None:
            try:
                await self.app[STORE].apply([change])  # publishes the claim: duplicates wake
                return
            except StoreUnavailable as exc:
                log.warning("claim %s not marked published, batching it: %s", envelope.id, exc)
        self.app[RECORDER].submitted(change)


def _queued_change(
    task_id: str,
    type_: str,
    queue: str,
    max_attempts: int,
    created_at: datetime,
    trace_id: str | None,
    submitter: str | None,
) -> Change:
    """Built unvalidated: every value comes from the gateway's own validated envelope."""
    return Change.model_construct(
        task_id=task_id,
        type=type_,
        queue=queue,
        status=Status.QUEUED,
        attempt=1,
        max_attempts=max_attempts,
        at=created_at,
        trace_id=trace_id,
        worker=None,
        result=None,
        error_type=None,
        error=None,
        reason=None,
        next_delay_seconds=None,
        created_at=created_at,
        submitter=submitter,
    )


async def claim_submission(request: web.Request, valid: ValidSubmission) -> SubmissionClaim:
    """A task id for this submission; with an ``Idempotency-Key``, the key claimed for it.

    A key already used by the same client with the same submission gives the
    original task (``replay``); with another submission, a 409. A duplicate
    arriving while the first is still being published waits for it.
    """
    claim = SubmissionClaim(request.app, new_task_id(), client_of(request))
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return claim
    if not IDEMPOTENCY_KEY.match(key):
        raise Problem(
            400,
            "invalid-idempotency-key",
            "Bad Request",
            "Idempotency-Key must be 1 to 255 printable ASCII characters",
        )
    claim.key = key
    record = _claim_record(claim, valid)
    try:
        claim.replay = await _claim_or_replay(request, record)
    except StoreUnavailable as exc:
        raise _store_problem(exc) from None
    return claim


def _claim_record(claim: SubmissionClaim, valid: ValidSubmission) -> TaskRecord:
    now = datetime.now(UTC)
    trace_id = trace_id_hex(trace.get_current_span())
    change = _queued_change(
        claim.task_id,
        valid.contract.name,
        valid.contract.queue,
        valid.max_attempts,
        now,
        trace_id,
        claim.submitter,
    )
    return replace(
        merge(None, change),
        published=False,
        idempotency_key=claim.key,
        request_hash=fingerprint(valid),
    )


def fingerprint(valid: ValidSubmission) -> str:
    """What makes two submissions "the same" for a key: the normalised submission."""
    digest = hashlib.sha256(
        orjson.dumps(
            [valid.contract.name, valid.max_attempts, valid.timeout_seconds, valid.priority]
        )
    )
    digest.update(valid.payload_json)
    return digest.hexdigest()


async def _claim_or_replay(request: web.Request, record: TaskRecord) -> web.Response | None:
    """None once ``record`` holds the key; else the response naming the original task."""
    store = request.app[STORE]
    for _ in range(3):  # a holder can vanish (its publish failed) and the key be claimed anew
        holder = await store.claim(record)
        if holder is None:
            return None
        if holder.request_hash != record.request_hash:
            raise Problem(
                409,
                "idempotency-key-reused",
                "Conflict",
                "this Idempotency-Key was used with a different submission",
            )
        if not holder.published:
            holder = await _await_publication(request, holder)
        if holder is not None and holder.published:
            return _replay(holder)
        if holder is not None:
            raise Problem(
                409,
                "idempotency-key-in-use",
                "Conflict",
                "a submission with this Idempotency-Key is still being published",
                headers={"Retry-After": "1"},
            )
    raise Problem(
        409,
        "idempotency-key-in-use",
        "Conflict",
        "the key keeps changing hands",
        headers={"Retry-After": "1"},
    )


async def _await_publication(request: web.Request, holder: TaskRecord) -> TaskRecord | None:
    """The claim once published; None once released (or taken over as stale); else as is."""
    app = request.app
    timeout = app[SETTINGS].publish_timeout_seconds + 1.0
    with app[WATCHERS].watch(holder.id) as watch:
        current: TaskRecord | None = holder
        deadline = _now() + timeout
        while current is not None and not current.published and (left := deadline - _now()) > 0:
            await watch.wait(left)
            current = await app[STORE].get(holder.id, claims=True)
    if current is not None and not current.published:
        stale_before = datetime.now(UTC).timestamp() - max(STALE_CLAIM_SECONDS, 3 * timeout)
        if await app[STORE].release(
            holder.id, unless_newer_than=datetime.fromtimestamp(stale_before, UTC)
        ):
            log.warning("took over stale idempotency claim %s", holder.id)
            return None
    return current


def _replay(record: TaskRecord) -> web.Response:
    body = {
        "id": record.id,
        "type": record.type,
        "queue": record.queue,
        "status": record.status.value,
        "trace_id": record.trace_id,
        "created_at": record.created_at.isoformat(),
    }
    return _json(body, 200, {"Location": f"/v1/tasks/{record.id}", "Idempotent-Replayed": "true"})
