"""The web console: static assets under ``/console``, live updates from ``/v1/console/events``.

Why plain files and no framework: the console is three pages over the API the gateway
already serves, so a small script (``warren.service.console``) with no build step and no
CDN works offline, ships inside the package, and leaves nothing to compile on a user's
machine. The page itself carries no data, so it is served without a key; every read goes
through the API with the key the user signed in with, and sees what that key may see.

``/v1/console/events`` is a Server-Sent Events stream: ``queues`` (the queues API's body)
every ``QUEUES_EVERY_SECONDS``, and ``tasks`` (an empty ping: read again) soon after the
store signals a change, at most every ``TICK_SECONDS``. A ping names no task, so a key
learns nothing of tasks it may not see.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import orjson
from aio_pika.exceptions import AMQPError
from aiohttp import web

from warren.service.http.dead_letters import DEAD_STORE, KEEPER
from warren.service.http.task_store import STORE
from warren.service.queues import queue_states
from warren.service.store.db import StoreUnavailable

ASSETS_DIR = Path(__file__).resolve().parent.parent / "console"
ASSETS = {"console.js": "text/javascript", "console.css": "text/css"}
TICK_SECONDS = 0.5
QUEUES_EVERY_SECONDS = 2.0
# The page runs only its own script and styles, and talks only to this gateway.
CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'"


class ChangeFeed:
    """Counts the store's change signals; each stream compares with the count it last saw."""

    def __init__(self) -> None:
        self.version = 0
        self.closed = False

    def changed(self, ids: Iterable[str] | None) -> None:
        self.version += 1


FEED = web.AppKey("console_feed", ChangeFeed)


def add_console_routes(app: web.Application) -> None:
    """The console's pages and its event stream (after the store and the keeper)."""
    app[FEED] = ChangeFeed()
    app.cleanup_ctx.append(_follow_store)
    app.on_shutdown.append(_close_streams)
    app.router.add_get("/console", console_page)
    app.router.add_get("/console/{name}", console_asset)
    app.router.add_get("/v1/console/events", console_events)


async def _follow_store(app: web.Application) -> AsyncIterator[None]:
    app[STORE].subscribe(app[FEED].changed)
    yield


async def _close_streams(app: web.Application) -> None:
    app[FEED].closed = True


async def console_page(request: web.Request) -> web.FileResponse:
    return _file("index.html", "text/html")


async def console_asset(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise web.HTTPNotFound(text=f"no console asset {name[:64]!r}")
    return _file(name, ASSETS[name])


def _file(name: str, content_type: str) -> web.FileResponse:
    headers = {
        "Content-Type": f"{content_type}; charset=utf-8",
        "Cache-Control": "no-cache",
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
    }
    return web.FileResponse(ASSETS_DIR / name, headers=headers)


async def console_events(request: web.Request) -> web.StreamResponse:
    """``queues`` every few seconds, ``tasks`` when records changed; ends at shutdown."""
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    feed = request.app[FEED]
    seen, next_queues = feed.version, 0.0
    while not feed.closed:
        if time.monotonic() >= next_queues:
            await _send(response, "queues", await _queues(request.app))
            next_queues = time.monotonic() + QUEUES_EVERY_SECONDS
        if feed.version != seen:
            seen = feed.version
            await _send(response, "tasks", {})
        await asyncio.sleep(TICK_SECONDS)
    await response.write_eof()
    return response


async def _queues(app: web.Application) -> dict[str, object]:
    keeper = app[KEEPER]
    connection = keeper.connection
    if connection is not None and not connection.connected.is_set():
        connection = None
    try:
        states = await queue_states(keeper.shape, connection, app[STORE], app[DEAD_STORE])
    except (StoreUnavailable, AMQPError, OSError):
        return {"queues": [], "error": "unavailable"}
    return {"queues": [s.to_json() for s in states]}


async def _send(response: web.StreamResponse, event: str, body: object) -> None:
    await response.write(b"event: %s\ndata: %s\n\n" % (event.encode(), orjson.dumps(body)))
