"""``DELETE /v1/tasks/{id}``: cancel a task that has not finished.

The gateway cannot stop a task itself: it broadcasts a cancellation to every
consumer (``<ns>.control``), and the consumer holding the task acts on it
(skips the delivery, or stops the running attempt) and publishes the
``cancelled`` event that finishes the record. A delayed task due later than
consumers remember a cancellation gets it sent again down the delay ladder
(``warren.service.delays.cancel_later``); its record stays ``scheduled``, with
the request noted, until it is due and skipped.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiohttp import web

from warren.service.delays import cancel_later
from warren.service.errors import PublishError
from warren.service.http.keys import PUBLISHER, SETTINGS
from warren.service.http.problems import Problem
from warren.service.http.task_records import existing_record, json_response, record_json
from warren.service.http.task_store import RECORDER, STORE
from warren.service.store import TaskRecord
from warren.service.store.db import StoreUnavailable
from warren.service.store.model import Status
from warren.service.wire import cancel_message

log = logging.getLogger(__name__)


async def cancel_task(request: web.Request) -> web.Response:
    """202 while the cancellation travels, 200 once cancelled, 409 once otherwise finished.

    The broadcast goes first: only once the broker confirmed it is the request
    noted on the record. The record turns ``cancelled`` when a consumer acts
    on it and says so.
    """
    task_id, record = await existing_record(request)
    if record.status is Status.CANCELLED:
        return json_response(record_json(request, record))
    if record.final:
        raise Problem(
            409,
            "task-finished",
            "Conflict",
            f"the task is already {record.status.value}; there is nothing to cancel",
        )
    publisher = request.app[PUBLISHER]
    retention = request.app[SETTINGS].cancellation_retention_seconds
    try:
        await publisher.publish(publisher.names.control_exchange, cancel_message(task_id), "")
        if record.status is Status.SCHEDULED and record.due_at is not None:
            await cancel_later(publisher, task_id, record.due_at, retention)
    except PublishError as exc:
        raise Problem(
            503,
            "broker-unavailable",
            "Service Unavailable",
            f"the cancellation was not sent: {exc}",
            headers={"Retry-After": str(request.app[SETTINGS].retry_after_seconds)},
        ) from None
    noted = await _note_cancel(request.app, record)
    return json_response(record_json(request, noted), status=202)


async def _note_cancel(app: web.Application, record: TaskRecord) -> TaskRecord:
    """The record with the request noted; as it was if the store cannot be reached."""
    store = app[STORE]
    try:
        if unwritten := app[RECORDER].unflushed_changes(record.id):  # accepted moments ago
            await store.apply(unwritten)
        noted = await store.request_cancel(record.id, datetime.now(UTC))
    except StoreUnavailable as exc:  # sent all the same: consumers will act on it
        log.warning("cancellation of %s sent but not noted: %s", record.id, exc)
        noted = None
    return noted or record
