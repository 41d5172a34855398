"""Tracing and metrics set-up, and W3C trace-context propagation through message headers.

An SDK tracer provider is always installed, even with no exporter, so every
task gets a real trace id to hand back to the client; spans are exported over
OTLP/HTTP only when ``otel_endpoint`` is set. Metrics go through the
OpenTelemetry API to a Prometheus reader, served as ``/metrics`` by the
gateway and by each consumer. Both providers are process-global by
OpenTelemetry's design, so they are installed once per process.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import context, metrics, trace
from opentelemetry.sdk.environment_variables import OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes, AttributeValue

from warren.service.settings import Settings
from warren.service.wire import clean_traceparent, clean_tracestate

_propagator = TraceContextTextMapPropagator()
_tracer_provider: TracerProvider | None = None
_meter_provider: MeterProvider | None = None
_request_heads: RequestHeads | None = None
log = logging.getLogger(__name__)


def setup_telemetry(settings: Settings, component: str) -> None:
    """Install the process's tracer and meter providers once; later calls change nothing.

    ``component`` is the process's role: ``gateway``, ``consumer-<queue>``.
    """
    global _tracer_provider, _meter_provider, _request_heads  # noqa: PLW0603 - as OpenTelemetry's
    if _tracer_provider is not None:
        return
    resource = Resource.create(resource_attributes(settings, component))
    sampler = DecidedOrParentBased(settings.otel_sampling_ratio)
    _tracer_provider = TracerProvider(resource=resource, sampler=sampler)
    if os.environ.get(OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED, "").strip().lower() != "true":
        # The SDK counts the spans it starts when told to: then it starts every span.
        _request_heads = RequestHeads(settings.otel_sampling_ratio, _tracer_provider.id_generator)
    if settings.otel_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otel_endpoint.rstrip("/") + "/v1/traces"
        _tracer_provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint), schedule_delay_millis=1000)
        )
        log.info("exporting traces to %s", endpoint)
    trace.set_tracer_provider(_tracer_provider)

    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    # No exemplars: the Prometheus text reader never exports them, and offering each
    # measurement to a reservoir was ~3 % of a gateway request's CPU.
    _meter_provider = MeterProvider(
        resource=resource,
        metric_readers=[PrometheusMetricReader()],
        exemplar_filter=AlwaysOffExemplarFilter(),
    )
    metrics.set_meter_provider(_meter_provider)
    _instrument_aiohttp()


def resource_attributes(settings: Settings, component: str) -> dict[str, str]:
    """What every span and metric of this process says about who sent it."""
    return {
        # Per role, so Jaeger tells the gateway from the consumers of each queue, unless the
        # operator named the service; the namespace tells deployments sharing a collector apart.
        "service.name": settings.otel_service_name or f"warren-{component}",
        "service.namespace": settings.namespace,
        # Which process: replicas, and the gateway's workers, share one service name.
        "service.instance.id": settings.worker_name,
        "warren.component": component,
    }


def _instrument_aiohttp() -> None:
    """CLIENT spans and an outgoing ``traceparent`` for every aiohttp client session (webhooks
    carry the task's trace to their receiver). Server spans are Warren's own
    (``warren.service.http.tracing``): the contrib server middleware cost ~30 % of a request."""
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor

    AioHttpClientInstrumentor().instrument()


def shutdown_telemetry() -> None:
    """Flush spans still buffered (a process exiting after SIGTERM must not drop its last trace)."""
    if _tracer_provider is not None:
        _tracer_provider.force_flush(timeout_millis=5000)
        _tracer_provider.shutdown()


def prometheus_text() -> tuple[bytes, str]:
    """The ``/metrics`` body and content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


# A proxy until set-up installs the provider, then it delegates: obtained once, not per span.
_TRACER = trace.get_tracer("warren")


def tracer() -> trace.Tracer:
    return _TRACER


def inject() -> dict[str, str]:
    """The current span's trace context as ``traceparent``/``tracestate`` headers."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier


def extract(headers: Mapping[str, Any]) -> context.Context:
    """A context continuing the sender's trace; malformed trace headers are ignored."""
    carrier = {}
    if parent := clean_traceparent(headers.get("traceparent")):
        carrier["traceparent"] = parent
        if state := clean_tracestate(headers.get("tracestate")):
            carrier["tracestate"] = state
    return _propagator.extract(carrier)


def trace_id_hex(span: trace.Span) -> str:
    return format(span.get_span_context().trace_id, "032x")


# --- Sampling: a head decision for successes, every failed attempt kept (tail-style) ---------

SAMPLED_BY = "warren.sampled_by"
"""Attribute of a span whose code decided to record it: ``head`` (sampled when the attempt
started) or ``outcome`` (not sampled, kept afterwards because the attempt failed)."""


class DecidedOrParentBased(Sampler):
    """The process's sampler: parent-based at ``ratio`` (the gateway's rule), except for spans
    that carry ``SAMPLED_BY``: the consumer decided those already (``AttemptSampling``)."""

    def __init__(self, ratio: float) -> None:
        self._head = ParentBased(TraceIdRatioBased(ratio))

    def should_sample(
        self,
        parent_context: context.Context | None,
        trace_id: int,
        name: str,
        kind: trace.SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[trace.Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        if attributes is not None and SAMPLED_BY in attributes:
            parent = trace.get_current_span(parent_context).get_span_context()
            state = parent.trace_state if parent.is_valid else None
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, state)
        if parent_context is not None and parent_context.get(_ROOT_SAMPLED):
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, None)
        return self._head.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return "DecidedOrParentBased"


class PendingSpan:
    """The span of an attempt not sampled when it started: nothing is recorded while it runs
    but what a span would be told; at its end it becomes a real span only if the attempt
    failed, with its start time, parent, attributes, exceptions and error status.

    A context manager: the sender's context is current inside (a retry carries the trace
    on). The attributes are built only for a span kept (``attributes()``): most attempts
    succeed and never need them.
    """

    __slots__ = (
        "_attributes",
        "_error",
        "_exceptions",
        "_extra",
        "_name",
        "_parent",
        "_start",
        "_token",
        "kept",
    )

    def __init__(
        self, name: str, parent: context.Context, attributes: Callable[[], dict[str, Any]]
    ) -> None:
        self._start = time.time_ns()
        self._name = name
        self._parent = parent
        self._attributes = attributes
        self._extra: dict[str, Any] = {}
        self._exceptions: list[tuple[BaseException, int]] = []
        self._error: str | None = None
        self._token: object = None
        self.kept: trace.Span | None = None

    def __enter__(self) -> PendingSpan:
        self._token = context.attach(self._parent)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: Any) -> None:
        try:
            if isinstance(exc, Exception):  # escaped the delivery path: not settled, so kept
                self.record_exception(exc)
                self.set_status(trace.StatusCode.ERROR, type(exc).__qualname__)
        finally:
            context.detach(self._token)  # type: ignore[arg-type]
            self.end()

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        self._extra[key] = value

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        self._exceptions.append((exception, timestamp or time.time_ns()))

    def set_status(
        self, status: trace.Status | trace.StatusCode, description: str | None = None
    ) -> None:
        code = status.status_code if isinstance(status, trace.Status) else status
        if code is trace.StatusCode.ERROR:
            self._error = description or (
                status.description if isinstance(status, trace.Status) else None
            )
            self._error = self._error or "error"

    def end(self) -> None:
        """Keep the attempt's span if it failed (retried, dead, or not settled); else nothing."""
        if self._error is None:
            return
        attributes = self._attributes()
        attributes.update(self._extra)
        attributes[SAMPLED_BY] = "outcome"
        span = _TRACER.start_span(
            self._name,
            context=self._parent,
            kind=trace.SpanKind.CONSUMER,
            attributes=attributes,
            start_time=self._start,
        )
        for exception, at in self._exceptions:
            span.record_exception(exception, timestamp=at)
        span.set_status(trace.StatusCode.ERROR, self._error)
        span.end()
        self.kept = span


_EMPTY = context.Context()


def _remote_parent(headers: Mapping[str, Any]) -> trace.SpanContext | None:
    """The sender's span context, as ``extract`` reads it, from the validated ``traceparent``
    directly: the propagator parses it again, which was ~4 % of a delivery's CPU."""
    parent = clean_traceparent(headers.get("traceparent"))
    if parent is None or parent.startswith("ff"):
        return None
    trace_id, span_id = int(parent[3:35], 16), int(parent[36:52], 16)
    if not trace_id or not span_id:
        return None
    state = clean_tracestate(headers.get("tracestate"))
    return trace.SpanContext(
        trace_id,
        span_id,
        is_remote=True,
        trace_flags=trace.TraceFlags(int(parent[53:], 16)),
        trace_state=trace.TraceState.from_header([state]) if state else None,
    )


def _head_sampled(parent: trace.SpanContext | None, bound: int) -> bool:
    """The head decision, gateway and consumers alike: the sender's ``sampled`` flag, or for
    a root a draw at the ratio (``bound``: ``TraceIdRatioBased``'s for that ratio)."""
    if parent is None:
        return random.getrandbits(64) < bound  # a sample, not a secret
    return bool(parent.trace_flags.sampled)


def _sender(parent: trace.SpanContext | None) -> context.Context:
    """A context holding only the sender's span (empty for a root)."""
    if parent is None:
        return _EMPTY
    return trace.set_span_in_context(trace.NonRecordingSpan(parent), _EMPTY)


SpanLike = trace.Span | PendingSpan
"""What the delivery path writes to: the attempt's span, or its stand-in until it fails."""


class AttemptSampling:
    """The consumer's decision for each attempt (tail-style): traced while it runs if sampled
    at its start, else traced afterwards only if it fails.

    The head decision follows the sender (the ``traceparent`` flag the gateway set at its own
    ratio), and ``ratio`` for a delivery without trace context, so a sampled trace stays whole
    from the HTTP request to the last attempt. A success not sampled costs no span at all; a
    retried, dead or failed attempt always has one.
    """

    def __init__(self, ratio: float) -> None:
        self._bound = TraceIdRatioBased.get_bound_for_rate(ratio)

    def head(self, headers: Mapping[str, Any]) -> tuple[context.Context, bool]:
        """The sender's trace context and the head decision for one delivery."""
        parent = _remote_parent(headers)
        return _sender(parent), _head_sampled(parent, self._bound)

    def span(
        self, name: str, headers: Mapping[str, Any], attributes: Callable[[], dict[str, Any]]
    ) -> AbstractContextManager[SpanLike]:
        """The attempt's consumer span, current while the body runs (or its pending stand-in,
        with the sender's context current, so a retry carries the trace on).
        ``attributes()`` builds the span's attributes, only for a span recorded."""
        parent, sampled = self.head(headers)
        if not sampled:
            return PendingSpan(name, parent, attributes)
        recorded = attributes()
        recorded[SAMPLED_BY] = "head"
        return _TRACER.start_as_current_span(
            name, context=parent, kind=trace.SpanKind.CONSUMER, attributes=recorded
        )


_ROOT_SAMPLED = context.create_key("warren.root-sampled")
_NOT_SAMPLED = trace.TraceFlags(trace.TraceFlags.DEFAULT)
_NOT_SAMPLED_RANDOM = trace.TraceFlags(trace.TraceFlags.RANDOM_TRACE_ID)


class RequestHeads:
    """The gateway's head decision for a request, made before any span: a request not
    sampled gets no SDK span at all, only the span context it carries on to its task.

    The same decision as the process's sampler (``DecidedOrParentBased``, parent-based at
    ``ratio``): a caller's ``traceparent`` decides by its flag; without one, a root is
    sampled at ``ratio``, drawn here, and the sampler is told so (``_ROOT_SAMPLED`` in the
    context the span starts in): the SDK then draws the span's trace id, and a sampled
    request's span is exactly what the SDK alone made (the consumers follow the flag, not
    the trace id). A span context not sampled is built as the SDK builds a dropped span's:
    a new span id, the parent's trace id and trace state (or a new trace id), the
    random-trace-id flag as the SDK sets it. The span and its context went from 5.2 % of
    the gateway's busy samples to 2.8 % (the sampled tenth included).
    """

    def __init__(self, ratio: float, ids: IdGenerator) -> None:
        self._bound = TraceIdRatioBased.get_bound_for_rate(ratio)
        self._ids = ids
        self._random_flags = _NOT_SAMPLED_RANDOM if ids.is_trace_id_random() else _NOT_SAMPLED

    def head(self, headers: Mapping[str, Any]) -> tuple[context.Context, trace.SpanContext | None]:
        """The context to start a sampled request's span in, and a request's span context
        when it is not sampled (then the context is not needed: None for a sampled one)."""
        parent = _remote_parent(headers)
        if _head_sampled(parent, self._bound):
            if parent is None:  # the SDK's sampler is told it was drawn, not asked again
                return context.set_value(_ROOT_SAMPLED, True, _EMPTY), None
            return _sender(parent), None
        if parent is None:
            trace_id, state = self._ids.generate_trace_id(), None
            flags = self._random_flags
        else:
            trace_id, state = parent.trace_id, parent.trace_state
            random_id = parent.trace_flags.random_trace_id
            flags = _NOT_SAMPLED_RANDOM if random_id else _NOT_SAMPLED
        span_id = self._ids.generate_span_id()
        return _EMPTY, trace.SpanContext(trace_id, span_id, False, flags, state)


def request_heads() -> RequestHeads | None:
    """The process's request decisions; None before set-up (the SDK's proxy then decides),
    or when the SDK counts every span it starts (``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED``)."""
    return _request_heads
