"""Task records in the gateway: store, recorder and waiters, held for the app's life.

``task_store`` is a ``cleanup_ctx`` resource: it opens the store, wakes this
process's waiters on every change the store signals, and starts the recorder
on a broker connection of its own (so a blocked publishing connection never
stalls the recorder's acks); it stops them in the reverse order.
``release_waiters`` runs on shutdown, before aiohttp waits for handlers, so
long-polls answer and event streams end instead of holding the shutdown up.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from warren.service.http.keys import BROKER, SETTINGS
from warren.service.http.problems import Problem
from warren.service.recorder import Recorder
from warren.service.store import TaskStore, open_store
from warren.service.store.watch import Watchers

log = logging.getLogger(__name__)

STORE = web.AppKey("task_store", TaskStore)
RECORDER = web.AppKey("recorder", Recorder)
WATCHERS = web.AppKey("watchers", Watchers)


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


async def release_waiters(app: web.Application) -> None:
    """On shutdown, before aiohttp waits for handlers: long-polls answer, streams end."""
    if WATCHERS in app:
        app[WATCHERS].close()


async def store_behind(request: web.Request) -> Problem | None:
    """None once this gateway may accept tasks: its unwritten ``queued`` records are under
    their bound (waited for up to the publish timeout); else the 503 ``store-behind`` that
    a submission gets (each task of a batch)."""
    settings = request.app[SETTINGS]
    if await request.app[RECORDER].room(settings.publish_timeout_seconds):
        return None
    return Problem(
        503,
        "store-behind",
        "Service Unavailable",
        f"the task store is {settings.recorder_max_unwritten_submissions} records behind "
        "this gateway's intake",
        headers={"Retry-After": str(settings.retry_after_seconds)},
    )


def store_problem(exc: Exception) -> Problem:
    """The answer of any view whose store read or write failed: 503, try again in a second."""
    log.warning("task store unavailable: %s", exc)
    return Problem(
        503,
        "store-unavailable",
        "Service Unavailable",
        "the task store cannot be reached",
        headers={"Retry-After": "1"},
    )
