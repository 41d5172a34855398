"""Tracing set-up and W3C trace-context propagation through message headers.

An SDK tracer provider is always installed, even with no exporter, so every
task gets a real trace id to hand back to the client; spans are exported
only when ``otel_endpoint`` is set.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry import context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from service.envelope import clean_traceparent, clean_tracestate
from service.settings import Settings

_propagator = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None
log = logging.getLogger(__name__)


def setup_tracing(settings: Settings, component: str) -> TracerProvider:
    """Install the process's tracer provider once; later calls return the same one."""
    global _provider  # noqa: PLW0603 - OpenTelemetry's provider is process-global by design
    if _provider is not None:
        return _provider
    resource = Resource.create(
        {"service.name": settings.otel_service_name, "warren.component": component}
    )
    sampler = ParentBased(TraceIdRatioBased(settings.otel_sampling_ratio))
    _provider = TracerProvider(resource=resource, sampler=sampler)
    if settings.otel_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otel_endpoint.rstrip("/") + "/v1/traces"
        _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        log.info("exporting traces to %s", endpoint)
    trace.set_tracer_provider(_provider)
    return _provider


def tracer() -> trace.Tracer:
    return trace.get_tracer("warren")


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
