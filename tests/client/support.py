"""A real HTTP server in front of the gateway: it answers requests it was told to refuse
(503, 429, or a connection dropped unanswered) and forwards every other one."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import aiohttp
import orjson
from aiohttp import web

FORWARDED = ("Content-Type", "Location", "Retry-After", "Idempotent-Replayed")
DROP = 0
"""An ``Answer`` status: close the connection without answering, after the request arrived."""


@dataclass(frozen=True)
class Answer:
    """What the front answers, instead of forwarding, to the next request with ``method``."""

    method: str
    status: int
    retry_after: str | None = None


@dataclass
class Front:
    """Forwards to ``upstream`` unless an ``Answer`` in ``script`` matches the request first."""

    upstream: str
    script: list[Answer] = field(default_factory=list)
    seen: list[tuple[str, float]] = field(default_factory=list)  # (method, monotonic time)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    def times(self, method: str) -> list[float]:
        return [at for seen, at in self.seen if seen == method]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.method, time.monotonic()))
        body = await request.read()
        answer = next((a for a in self.script if a.method == request.method), None)
        if answer is None:
            return await self.forward(request, body)
        self.script.remove(answer)
        if answer.status == DROP:
            assert request.transport is not None
            request.transport.abort()
            raise web.HTTPInternalServerError  # never written: the connection is gone
        return problem(answer)

    async def forward(self, request: web.Request, body: bytes) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with (
            aiohttp.ClientSession() as http,
            http.request(
                request.method, self.upstream + request.path_qs, data=body, headers=headers
            ) as response,
        ):
            kept = {k: v for k, v in response.headers.items() if k in FORWARDED}
            return web.Response(status=response.status, body=await response.read(), headers=kept)


def problem(answer: Answer) -> web.Response:
    code = {429: "rate-limited", 503: "broker-unavailable"}.get(answer.status, "refused")
    body = {"type": f"/problems/{code}", "title": "Refused", "status": answer.status, "code": code}
    headers = {"Retry-After": answer.retry_after} if answer.retry_after else {}
    return web.Response(
        status=answer.status,
        body=orjson.dumps(body),
        content_type="application/problem+json",
        headers=headers,
    )
