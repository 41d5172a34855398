"""Waiting for a task to end, for a request: ``GET /v1/tasks/{id}?wait=S`` and
``POST /v1/tasks?wait=S`` (submit and wait: a task engine's synchronous mode in one request).

A waiter subscribes before it reads the record, so a change between its read and
its wait is never missed; it reads again only when the store says the task
changed (``warren.service.store.watch``), and never polls the database.
"""

from __future__ import annotations

import time

from aiohttp import web

from warren.service.http.task_records import read_record
from warren.service.http.task_store import WATCHERS
from warren.service.store import TaskRecord


async def final_record(request: web.Request, task_id: str, wait: float) -> TaskRecord | None:
    """The task's record once final, else as it is after ``wait`` seconds (or when the
    gateway stops); None for a task this client does not know (yet)."""
    with request.app[WATCHERS].watch(task_id) as watch:  # before reading: no lost wake-up
        record = await read_record(request, task_id)
        deadline = time.monotonic() + wait
        while not (record and record.final) and not watch.closed:
            if (left := deadline - time.monotonic()) <= 0:
                break
            if await watch.wait(left):
                record = await read_record(request, task_id) or record
    return record
