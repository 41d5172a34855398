"""The gateway's own SERVER span, one per request: HTTP semantic-convention attributes, the
caller's trace continued, the submitted task named on it, and no span for probes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.test_observability import submit
from warren.service.telemetry import prometheus_text

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def finished(gateway: TestClient[Any, Any]) -> Iterator[InMemorySpanExporter]:
    """Spans the in-process gateway ends (its provider is installed once per process)."""
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    yield exporter
    processor.shutdown()  # the provider keeps it, but a shut-down processor exports nothing


def server_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.kind is trace.SpanKind.SERVER]


async def test_a_submission_gets_a_server_span_continuing_the_callers_trace(
    gateway: TestClient[Any, Any], finished: InMemorySpanExporter
) -> None:
    # The stdlib client: this process's aiohttp client is instrumented and would replace
    # the caller's traceparent with its own CLIENT span's.
    headers = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01", "User-Agent": "t/1"}
    url = str(gateway.make_url("")).rstrip("/")
    accepted = await submit(url, {"type": "diag.echo", "payload": {"message": "hi"}}, headers)
    assert accepted["trace_id"] == CALLER_TRACE

    (server,) = server_spans(finished)
    assert server.name == "POST /v1/tasks"
    assert server.parent is not None and format(server.parent.span_id, "016x") == CALLER_SPAN
    attributes = dict(server.attributes or {})
    assert attributes == {
        "http.request.method": "POST",
        "http.route": "/v1/tasks",
        "url.path": "/v1/tasks",
        "url.scheme": "http",
        "http.response.status_code": 202,
        "warren.task.id": accepted["id"],
        "warren.task.type": "diag.echo",
    }
    assert server.status.status_code is trace.StatusCode.UNSET
    # One span per request: the task's trace context is the SERVER span's, no PRODUCER beside it.
    assert [s.kind for s in finished.get_finished_spans()] == [trace.SpanKind.SERVER]


async def test_a_rejected_request_span_has_its_status_and_route_template(
    gateway: TestClient[Any, Any], finished: InMemorySpanExporter
) -> None:
    invalid = await gateway.post("/v1/tasks", json={"type": "no.such", "payload": {}})
    missing = await gateway.get("/v1/tasks/t_doesnotexist")
    assert (invalid.status, missing.status) == (422, 404)

    spans = {s.name: dict(s.attributes or {}) for s in server_spans(finished)}
    assert spans["POST /v1/tasks"]["http.response.status_code"] == 422
    # The route template, never the id: span names and metric labels stay a bounded set.
    assert spans["GET /v1/tasks/{id}"]["http.route"] == "/v1/tasks/{id}"
    assert spans["GET /v1/tasks/{id}"]["http.response.status_code"] == 404
    assert all(s.status.status_code is trace.StatusCode.UNSET for s in server_spans(finished))


async def test_probes_and_scrapes_make_no_span_but_requests_are_timed(
    gateway: TestClient[Any, Any], finished: InMemorySpanExporter
) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await gateway.get(path)).status == 200
    await gateway.post("/v1/tasks", json={"type": "diag.echo", "payload": {"message": "hi"}})
    assert [s.name for s in server_spans(finished)] == ["POST /v1/tasks"]
    body, _ = prometheus_text()
    assert (
        b'http_server_request_duration_seconds_count{http_request_method="POST",'
        b'http_response_status_code="202",http_route="/v1/tasks"'
    ) in body
