"""Reading task records: ``GET /v1/tasks/{id}[?wait=S]`` and ``GET /v1/tasks?…``.

Query parameters are checked here, each failure a 400 naming the parameter;
a long-poll waits on this process's waiters (``warren.service.store.watch``)
and never polls the database.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from aiohttp import web

from warren.service.contracts import QUEUE_NAME, TASK_NAME
from warren.service.http.auth import CLIENT
from warren.service.http.problems import Problem
from warren.service.http.task_records import json_response, not_found, record_json
from warren.service.http.task_store import STORE, store_problem
from warren.service.http.task_wait import final_record
from warren.service.store import ListQuery
from warren.service.store.db import StoreUnavailable
from warren.service.store.model import TASK_ID, Status
from warren.service.store.sql import decode_cursor

MAX_WAIT_SECONDS = 60.0
MAX_PAGE = 500
# What a database time column holds without overflow on either store, in UTC.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9998, 12, 31, tzinfo=UTC)


async def get_task(request: web.Request) -> web.Response:
    """``GET /v1/tasks/{id}[?wait=S]``: with ``wait``, answer once final or after S seconds.

    With ``wait``, an id not known yet is waited for as well: a task another
    replica accepted a moment ago may not be written yet. Past the wait it is a 404.
    """
    wait = float_param(request, "wait", 0.0, 0.0, MAX_WAIT_SECONDS)
    task_id = request.match_info["id"]
    record = await final_record(request, task_id, wait if TASK_ID.match(task_id) else 0.0)
    if record is None:
        raise not_found(task_id)
    return json_response(record_json(request, record))


async def list_tasks(request: web.Request) -> web.Response:
    """``GET /v1/tasks?status=&type=&queue=&since=&limit=&cursor=``: newest first."""
    query = list_query(request)
    try:
        page = await request.app[STORE].list(query)
    except StoreUnavailable as exc:
        raise store_problem(exc) from None
    items = [record_json(request, r, history=False) for r in page.items]
    return json_response({"items": items, "next_cursor": page.next_cursor})


def list_query(request: web.Request) -> ListQuery:
    """The list's filters; a client that does not see everyone's tasks sees only its own."""
    params = request.query
    statuses = _statuses(params.get("status", ""))
    since = _since(params.get("since"))
    cursor = _cursor(params.get("cursor") or None)
    return ListQuery(
        statuses=statuses,
        type=_name(params.get("type"), "type", TASK_NAME, "a task type name (area.action)"),
        queue=_name(params.get("queue"), "queue", QUEUE_NAME, "a queue name"),
        since=since,
        limit=int(float_param(request, "limit", 50, 1, MAX_PAGE)),
        cursor=cursor,
        submitter=None if request[CLIENT].sees_all else request[CLIENT].id,
    )


def _statuses(raw: str) -> tuple[Status, ...]:
    try:
        return tuple(Status(s) for s in raw.split(",") if s)
    except ValueError:
        raise bad_param("status", f"one or more of {', '.join(s.value for s in Status)}") from None


def _name(raw: str | None, name: str, pattern: re.Pattern[str], wanted: str) -> str | None:
    """A filter on a name that can exist, else a 400: a NUL or a stray byte must never reach
    the database, where it is an error (PostgreSQL) or an exception (SQLite), not a miss."""
    if not raw:
        return None
    if not pattern.match(raw):
        raise bad_param(name, wanted)
    return raw


def _since(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        since = datetime.fromisoformat(raw)
        if since.tzinfo is None:
            raise bad_param("since", "a time with its UTC offset")
        since = since.astimezone(UTC)  # overflows past year 1 or 9999: a 400, not a 500
    except (ValueError, OverflowError):
        raise bad_param("since", "an ISO 8601 time with its UTC offset") from None
    if not EARLIEST <= since <= LATEST:
        raise bad_param("since", f"a time from {EARLIEST.year} to {LATEST.year}")
    return since


def _cursor(raw: str | None) -> str | None:
    if raw is not None:
        try:
            decode_cursor(raw)
        except ValueError:
            raise bad_param("cursor", "a next_cursor of an earlier page") from None
    return raw


def float_param(request: web.Request, name: str, default: float, low: float, high: float) -> float:
    """A number from ``low`` to ``high`` (NaN and infinities are not), else a 400."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        raise bad_param(name, f"a number from {low:g} to {high:g}")
    return value


def bad_param(name: str, wanted: str) -> Problem:
    return Problem(
        400,
        "invalid-parameter",
        "Bad Request",
        f"{name} must be {wanted}",
        errors=[{"loc": ["query", name], "msg": f"must be {wanted}", "type": "invalid"}],
    )
