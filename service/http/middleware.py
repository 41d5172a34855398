"""The gateway's one middleware: span → problem answers → who is asking → their budget.

One layer instead of four (tracing, problems, authentication, rate limit), each idea still
in its own module (``tracing.traced``, ``problems.answered``, ``auth.admit``,
``ratelimit.spend``): aiohttp wraps and awaits every middleware per request, and the order
that matters reads here once. The span is outermost, so it sees the status a problem was
answered with; probes and the scrape get no span, no key and no budget.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Protocol

from aiohttp import web

from warren.service.http.auth import Authenticator, admit
from warren.service.http.problems import Handler, answered
from warren.service.http.ratelimit import RateLimiter, spend
from warren.service.http.tracing import UNTRACED_PATHS, traced
from warren.service.settings import Settings


class Middleware(Protocol):
    """What ``@web.middleware`` makes."""

    def __call__(
        self, request: web.Request, handler: Handler
    ) -> Coroutine[Any, Any, web.StreamResponse]: ...


def gateway_middleware(
    settings: Settings, authenticator: Authenticator, limiter: RateLimiter
) -> Middleware:
    async def admitted(request: web.Request, handler: Handler) -> web.StreamResponse:
        """The view, once the caller is known (401/403) and within its budget (429)."""
        spend(limiter, admit(authenticator, request), settings)
        return await handler(request)

    @web.middleware
    async def serve(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in UNTRACED_PATHS:  # open: no span, no key, no budget
            return await answered(request, handler(request))
        return await traced(request, answered(request, admitted(request, handler)))

    return serve
