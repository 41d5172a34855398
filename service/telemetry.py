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
from collections.abc import Mapping
from typing import Any

from opentelemetry import context, metrics, trace
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from warren.service.settings import Settings
from warren.service.wire import clean_traceparent, clean_tracestate

_propagator = TraceContextTextMapPropagator()
_tracer_provider: TracerProvider | None = None
_meter_provider: MeterProvider | None = None
log = logging.getLogger(__name__)


def setup_telemetry(settings: Settings, component: str) -> None:
    """Install the process's tracer and meter providers once; later calls change nothing.

    ``component`` is the process's role: ``gateway``, ``consumer-<queue>``.
    """
    global _tracer_provider, _meter_provider  # noqa: PLW0603 - OpenTelemetry's are global
    if _tracer_provider is not None:
        return
    resource = Resource.create(resource_attributes(settings, component))
    sampler = ParentBased(TraceIdRatioBased(settings.otel_sampling_ratio))
    _tracer_provider = TracerProvider(resource=resource, sampler=sampler)
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
