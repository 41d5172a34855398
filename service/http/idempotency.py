"""``Idempotency-Key`` on ``POST /v1/tasks``, and the submission's ``queued`` write.

The submit view calls ``claim_submission`` once it has the envelope, before
the publish, then the claim's ``release`` (the publish failed) or ``record``
(it was confirmed).

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
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from warren.service.http.keys import SETTINGS
from warren.service.http.problems import Problem
from warren.service.http.task_records import json_response
from warren.service.http.task_store import RECORDER, STORE, WATCHERS, store_problem
from warren.service.store import TaskRecord
from warren.service.store.db import StoreUnavailable
from warren.service.store.merge import merge
from warren.service.store.model import Change, Status
from warren.service.wire import Envelope, task_change

log = logging.getLogger(__name__)

IDEMPOTENCY_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")
STALE_CLAIM_SECONDS = 30.0


@dataclass
class SubmissionClaim:
    """One submission and, with an ``Idempotency-Key``, its claim on that key."""

    app: web.Application
    task_id: str
    key: str | None = None
    replay: web.Response | None = None  # the original task, when the key was used before
    original: TaskRecord | None = None  # its record
    due_at: datetime | None = None  # a delayed task: its record says `scheduled` until then

    async def release(self) -> None:
        """The publish failed: free the key, so a retry with it can succeed."""
        if self.key is not None:
            try:
                await self.app[STORE].release(self.task_id)
            except StoreUnavailable as exc:  # stale claims are taken over later
                log.warning("idempotency claim %s not released: %s", self.task_id, exc)

    async def record(self, envelope: Envelope) -> None:
        """The gateway's ``queued`` (or ``scheduled``) write: batched, or for a keyed claim,
        written now."""
        change = submitted(envelope, self.due_at)
        if self.key is not None:
            try:
                await self.app[STORE].apply([change])  # publishes the claim: duplicates wake
                return
            except StoreUnavailable as exc:
                log.warning("claim %s not marked published, batching it: %s", envelope.id, exc)
        self.app[RECORDER].submitted(change)


def submitted(envelope: Envelope, due_at: datetime | None = None) -> Change:
    """The gateway's own change of a new task: ``queued``, or ``scheduled`` until ``due_at``."""
    status = Status.SCHEDULED if due_at is not None else Status.QUEUED
    return task_change(envelope, status, at=envelope.created_at, due_at=due_at)


async def claim_submission(
    request: web.Request,
    envelope: Envelope,
    due_at: datetime | None = None,
    when: str | None = None,
) -> SubmissionClaim:
    """The claim of ``envelope``'s task; with an ``Idempotency-Key``, the key claimed for it.

    A key already used by the same client with the same submission (``when``: its delay
    as asked, see ``submission.asked_delay``) gives the original task (``replay``); with
    another submission, a 409. A duplicate arriving while the first is still being
    published waits for it.
    """
    key = request.headers.get("Idempotency-Key")
    claim = await claim_key(request, envelope, key, due_at, when)
    if claim.original is not None:
        claim.replay = _replay(claim.original)
    return claim


def check_key(key: str) -> None:
    """A 400 unless ``key`` can be an ``Idempotency-Key``."""
    if not IDEMPOTENCY_KEY.match(key):
        raise Problem(
            400,
            "invalid-idempotency-key",
            "Bad Request",
            "Idempotency-Key must be 1 to 255 printable ASCII characters",
        )


async def claim_key(
    request: web.Request,
    envelope: Envelope,
    key: str | None,
    due_at: datetime | None = None,
    when: str | None = None,
) -> SubmissionClaim:
    """The claim of ``envelope``'s task on ``key`` (None: no key, nothing to claim); with
    ``original`` set when the key names a task submitted before (a batch item's key too).
    ``due_at``: a delayed task, whose record says ``scheduled``; ``when``: its delay as
    asked for, part of the fingerprint."""
    claim = SubmissionClaim(request.app, envelope.id, due_at=due_at)
    if key is None:
        return claim
    check_key(key)
    claim.key = key
    record = replace(
        merge(None, submitted(envelope, due_at)),
        published=False,
        idempotency_key=key,
        request_hash=fingerprint(envelope, when),
    )
    try:
        claim.original = await _claim_or_replay(request, record)
    except StoreUnavailable as exc:
        raise store_problem(exc) from None
    return claim


def fingerprint(envelope: Envelope, when: str | None = None) -> str:
    """What makes two submissions "the same" for a key: the normalised submission, its
    delay as asked for (``when``) included. A submission without a delay hashes as it
    did before delays existed, so the claims already stored keep matching."""
    options: list[Any] = [
        envelope.type,
        envelope.max_attempts,
        envelope.timeout_seconds,
        envelope.priority,
    ]
    if when is not None:
        options.append(when)
    digest = hashlib.sha256(orjson.dumps(options))
    digest.update(envelope.body)
    return digest.hexdigest()


async def _claim_or_replay(request: web.Request, record: TaskRecord) -> TaskRecord | None:
    """None once ``record`` holds the key; else the original task's record."""
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
            return holder
        if holder is not None:
            raise _in_use("a submission with this Idempotency-Key is still being published")
    raise _in_use("the key keeps changing hands")


def _in_use(detail: str) -> Problem:
    return Problem(409, "idempotency-key-in-use", "Conflict", detail, headers={"Retry-After": "1"})


async def _await_publication(request: web.Request, holder: TaskRecord) -> TaskRecord | None:
    """The claim once published; None once released (or taken over as stale); else as is."""
    app = request.app
    timeout = app[SETTINGS].publish_timeout_seconds + 1.0
    with app[WATCHERS].watch(holder.id) as watch:
        current: TaskRecord | None = holder
        deadline = time.monotonic() + timeout
        while current is not None and not current.published:
            if (left := deadline - time.monotonic()) <= 0:
                break
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


def replay_body(record: TaskRecord) -> dict[str, Any]:
    """The original task, as its 202 said it (with the status it has now)."""
    return {
        "id": record.id,
        "type": record.type,
        "queue": record.queue,
        "status": record.status.value,
        "trace_id": record.trace_id,
        "created_at": record.created_at.isoformat(),
    }


def _replay(record: TaskRecord) -> web.Response:
    headers = {"Location": f"/v1/tasks/{record.id}", "Idempotent-Replayed": "true"}
    return json_response(replay_body(record), 200, headers)
