"""One task record as a view sees it: read for its client, shown as JSON.

Every view of a single task (``GET``, its event stream, ``DELETE``) reads
through ``read_record``, so they agree on what a client may see: the stored
record, or one this replica accepted a moment ago and has not written yet,
and never another client's task (to that client it does not exist: a 404).
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from warren.service.http.auth import CLIENT
from warren.service.http.keys import SETTINGS
from warren.service.http.problems import Problem
from warren.service.http.task_store import RECORDER, STORE, store_problem
from warren.service.store import TaskRecord
from warren.service.store.db import StoreUnavailable
from warren.service.store.model import TASK_ID


async def read_record(request: web.Request, task_id: str) -> TaskRecord | None:
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
        raise store_problem(exc) from None
    record = record or unwritten or app[RECORDER].unflushed(task_id)
    return record if record is not None and request[CLIENT].may_see(record.submitter) else None


async def existing_record(request: web.Request) -> tuple[str, TaskRecord]:
    """The ``{id}`` of the path and its record, or a 404."""
    task_id = request.match_info["id"]
    record = await read_record(request, task_id)
    if record is None:
        raise not_found(task_id)
    return task_id, record


def not_found(task_id: str) -> Problem:
    return Problem(404, "not-found", "Not Found", f"no task {task_id}")


def record_json(request: web.Request, record: TaskRecord, *, history: bool = True) -> Any:
    """The API's view of a record, with a link to its trace when a Jaeger UI is configured."""
    body = record.to_json(history=history)
    ui = request.app[SETTINGS].jaeger_ui_url
    if ui and record.trace_id:
        body["trace_url"] = f"{ui.rstrip('/')}/trace/{record.trace_id}"
    return body


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """orjson, not aiohttp's ``json.dumps``: records hold datetimes and arbitrary results."""
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=headers
    )
