"""``GET /v1/tasks/{id}/events``: a task's record as Server-Sent Events, at each change.

The stream sends the record at once, then again whenever it changed, until it
is final; a comment line keeps idle connections (and proxies) from timing out.
Each event's id is the record's version, so a reconnecting ``EventSource``
says with ``Last-Event-ID`` what it has already seen.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from warren.service.http.problems import Problem
from warren.service.http.task_records import existing_record, read_record, record_json
from warren.service.http.task_store import WATCHERS

SSE_HEARTBEAT_SECONDS = 15.0
SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # proxies must not buffer the stream
}


async def task_events(request: web.Request) -> web.StreamResponse:
    """The record at once, then at each change, until final.

    An ``EventSource`` reconnects when a stream ends; coming back with the
    final version as ``Last-Event-ID`` it gets 204, which tells it to stop.
    """
    with request.app[WATCHERS].watch(request.match_info["id"]) as watch:
        task_id, record = await existing_record(request)
        if record.final and request.headers.get("Last-Event-ID") == str(record.version):
            return web.Response(status=204)
        response = web.StreamResponse(headers=SSE_HEADERS)
        await response.prepare(request)
        sent = -1
        try:
            while True:
                if record.version != sent:
                    await _send_event(response, record_json(request, record))
                    sent = record.version
                if record.final or watch.closed:
                    break
                if await watch.wait(SSE_HEARTBEAT_SECONDS):
                    record = await read_record(request, task_id) or record
                else:
                    await response.write(b": keep-alive\n\n")
            await response.write_eof()
        except (ConnectionResetError, Problem):  # the client left, or the store did
            pass
    return response


async def _send_event(response: web.StreamResponse, body: dict[str, Any]) -> None:
    """One unnamed event (so ``EventSource.onmessage`` gets it): the record, its version as id."""
    await response.write(b"id: %d\ndata: %s\n\n" % (body["version"], orjson.dumps(body)))
