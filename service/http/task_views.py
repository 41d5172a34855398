"""The task lifecycle API's routes, and the resources its views share.

Each job has its module: the store, recorder and waiters as an app resource
(``task_store``), reading one record for a client (``task_records``), reads
and long-polls (``task_reads``), Server-Sent Events (``task_stream``) and
cancellation (``task_cancel``). Submission is ``views.submit_task``, with its
``Idempotency-Key`` in ``idempotency``.
"""

from __future__ import annotations

from aiohttp import web

from warren.service.http.task_cancel import cancel_task
from warren.service.http.task_reads import get_task, list_tasks
from warren.service.http.task_store import release_waiters, task_store
from warren.service.http.task_stream import task_events


def add_task_routes(app: web.Application) -> None:
    """Register the task routes and, after any resource added before, the ``task_store``."""
    app.cleanup_ctx.append(task_store)
    app.on_shutdown.append(release_waiters)
    app.router.add_get("/v1/tasks", list_tasks)
    app.router.add_get("/v1/tasks/{id}", get_task)
    app.router.add_get("/v1/tasks/{id}/events", task_events)
    app.router.add_delete("/v1/tasks/{id}", cancel_task)
