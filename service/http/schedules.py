"""``GET /v1/schedules``: the app's schedules with their last and next tick."""

from __future__ import annotations

from aiohttp import web

from warren.service.http.auth import CLIENT
from warren.service.http.keys import SETTINGS
from warren.service.http.task_records import json_response
from warren.service.http.task_store import STORE, store_problem
from warren.service.schedule_status import schedule_states
from warren.service.schedules import Schedule
from warren.service.store.db import StoreUnavailable

SCHEDULES = web.AppKey("schedules", tuple[Schedule, ...])


async def list_schedules(request: web.Request) -> web.Response:
    """Every schedule of the app, whichever client asks; the last tick's task (its id and
    status) only to a client that may see that task: its ``submitter``'s key, or admin."""
    app = request.app
    try:
        states = await schedule_states(app[SCHEDULES], app[STORE], app[SETTINGS].namespace)
    except StoreUnavailable as exc:
        raise store_problem(exc) from None
    client = request[CLIENT]
    for state in states:
        if not client.may_see(state["submitter"]):
            state.update(last_task_id=None, last_status=None)
    return json_response({"items": states})


def add_schedule_routes(app: web.Application, schedules: tuple[Schedule, ...]) -> None:
    app[SCHEDULES] = schedules
    app.router.add_get("/v1/schedules", list_schedules)
