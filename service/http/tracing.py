"""The gateway's one span per request, and its request-duration metric.

Warren's own, replacing the contrib aiohttp-server instrumentation, which cost ~30 % of
the gateway's request handling (URL rebuilding and redaction, header sanitising, three
metric records per request). A caller's valid ``traceparent`` is continued
(``warren.service.telemetry.extract``: a malformed one starts a new trace). Probe and
scrape paths get no span.

One span per request: the SERVER span is also the one a submitted task's trace context
is injected from (``views.build_envelope``), so the task's consumer spans are its children
and no PRODUCER span is opened beside it (each span is ~0.1 ms of SDK work). The submit
view names the task on it (``name_task``). Attributes are the HTTP convention's required
ones plus the route, given when the span starts: the SDK then copies them once, where
``set_attributes`` on a started span costs about three times as much.

A request the head decision does not sample (``telemetry.RequestHeads``: most of them, at
the default ratio of 0.1) gets no SDK span: its span context, made directly, is current
while it is handled, so the task's ``traceparent`` (flag off) and trace id are what they
were, and nothing else is built. A sampled request's span is the SDK's, unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from contextlib import AbstractContextManager
from typing import Any

from aiohttp import web
from opentelemetry import context, trace

from warren.service.metrics import HTTP_SERVER_DURATION
from warren.service.telemetry import extract, request_heads, tracer

UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_metric_attributes: dict[tuple[str, str, int], dict[str, str | int]] = {}


def _route(request: web.Request) -> str:
    """The route template (``/v1/tasks/{id}``), never the raw path: a bounded label."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else ""


def _duration_attributes(method: str, route: str, status: int) -> dict[str, str | int]:
    key = (method, route, status)
    attributes = _metric_attributes.get(key)
    if attributes is None:
        attributes = {
            "http.request.method": method,
            "http.route": route,
            "http.response.status_code": status,
        }
        if len(_metric_attributes) < 1000:  # unknown methods are bounded by aiohttp, but still
            _metric_attributes[key] = attributes
    return attributes


def _finish(span: trace.Span, status: int) -> None:
    if span.is_recording():
        span.set_attribute("http.response.status_code", status)
        if status >= 500:  # a 4xx is the client's error, not the server span's
            span.set_attribute("error.type", str(status))
            span.set_status(trace.StatusCode.ERROR)


def name_task(task_id: str, task_type: str) -> None:
    """Name the submitted task on the request's span: found in Jaeger by its id."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({"warren.task.id": task_id, "warren.task.type": task_type})


class _Unsampled:
    """The span of a request not sampled, current while it is handled: nothing to record."""

    __slots__ = ("_span", "_token")

    def __init__(self, span_context: trace.SpanContext) -> None:
        self._span = trace.NonRecordingSpan(span_context)
        self._token: object = None

    def __enter__(self) -> trace.Span:
        self._token = context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(self, *_: Any) -> None:
        context.detach(self._token)  # type: ignore[arg-type]


def _request_span(request: web.Request, method: str, route: str) -> AbstractContextManager[Any]:
    """The request's span, current inside: the SDK's when sampled, else ``_Unsampled``."""
    heads = request_heads()
    if heads is None:
        parent = extract(request.headers)
    else:
        parent, unsampled = heads.head(request.headers)
        if unsampled is not None:
            return _Unsampled(unsampled)
    return tracer().start_as_current_span(
        f"{method} {route}" if route else method,
        context=parent,
        kind=trace.SpanKind.SERVER,
        attributes={
            "http.request.method": method,
            "http.route": route,
            "url.path": request.path,
            "url.scheme": request.scheme,
        },
        record_exception=False,
        set_status_on_exception=False,
    )


async def traced(request: web.Request, call: Awaitable[web.StreamResponse]) -> web.StreamResponse:
    """``call`` (the request's handling) awaited in a SERVER span named ``METHOD /route``,
    timed in the duration metric."""
    route = _route(request)
    method = request.method
    started = time.perf_counter()
    status = 500
    with _request_span(request, method, route) as span:
        try:
            response = await call
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except BaseException as exc:
            if span.is_recording():
                span.record_exception(exc)
            raise
        finally:
            _finish(span, status)
            HTTP_SERVER_DURATION.record(
                time.perf_counter() - started, _duration_attributes(method, route, status)
            )
