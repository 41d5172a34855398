"""One SERVER span per request, continuing the caller's valid ``traceparent`` if it sent one."""

from __future__ import annotations

from aiohttp import web
from opentelemetry import trace

from service.http.problems import Handler
from service.telemetry import extract, tracer


@web.middleware
async def tracing_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = request.match_info.route.resource
    name = f"{request.method} {route.canonical if route else request.path}"
    with tracer().start_as_current_span(
        name, context=extract(request.headers), kind=trace.SpanKind.SERVER
    ) as span:
        span.set_attribute("http.request.method", request.method)
        span.set_attribute("url.path", request.path)
        response = await handler(request)
        span.set_attribute("http.response.status_code", response.status)
        if response.status >= 500:
            span.set_status(trace.StatusCode.ERROR)
        return response
