"""The gateway's head decision made before any span (``telemetry.RequestHeads``): a request
not sampled gets the span context the SDK would have given it, without an SDK span; a
sampled one gets the SDK's span, as before.

Each decision is compared with what the SDK itself makes from the same parent, on a
provider of the test's own (the process's is installed once, at the tests' ratio of 1).
"""

from __future__ import annotations

from typing import Any

import pytest
from aio_pika.abc import AbstractChannel
from aiohttp.test_utils import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.test_gateway_tracing import CALLER_SPAN, CALLER_TRACE, finished, server_spans
from tests.test_observability import submit
from warren.service.settings import Settings
from warren.service.telemetry import DecidedOrParentBased, RequestHeads, extract
from warren.service.topology import Names

__all__ = ["finished"]  # the fixture, used by name below

UNSAMPLED = f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"
UNSAMPLED_RANDOM = f"00-{CALLER_TRACE}-{CALLER_SPAN}-02"
SAMPLED = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


def sdk(ratio: float) -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = TracerProvider(sampler=DecidedOrParentBased(ratio))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def sdk_span_context(provider: TracerProvider, headers: dict[str, str]) -> trace.SpanContext:
    """What the SDK alone makes of a request with ``headers``: its span's context."""
    span = provider.get_tracer("t").start_span(
        "POST /v1/tasks", context=extract(headers), kind=trace.SpanKind.SERVER
    )
    span.end()
    return span.get_span_context()


@pytest.mark.parametrize(
    "headers",
    [
        {"traceparent": UNSAMPLED},
        {"traceparent": UNSAMPLED_RANDOM},
        {"traceparent": UNSAMPLED, "tracestate": "vendor=abc,other=1"},
    ],
)
def test_a_caller_not_sampled_gets_the_sdks_span_context_without_a_span(
    headers: dict[str, str],
) -> None:
    provider, exporter = sdk(1.0)  # the caller's flag decides, whatever the ratio
    expected = sdk_span_context(provider, headers)
    _, mine = RequestHeads(1.0, provider.id_generator).head(headers)

    assert mine is not None and not expected.trace_flags.sampled
    assert (mine.trace_id, mine.trace_flags, mine.trace_state, mine.is_remote) == (
        expected.trace_id,
        expected.trace_flags,
        expected.trace_state,
        expected.is_remote,
    )
    assert mine.trace_id == int(CALLER_TRACE, 16)
    assert mine.span_id not in (0, int(CALLER_SPAN, 16))
    assert exporter.get_finished_spans() == ()  # the SDK's own span was not recorded either


def test_a_root_not_sampled_gets_a_new_trace_and_the_sdks_flags() -> None:
    provider, _ = sdk(0.0)
    expected = sdk_span_context(provider, {})
    heads = RequestHeads(0.0, provider.id_generator)
    contexts = [heads.head({}) for _ in range(50)]
    for _, mine in contexts:
        assert mine is not None
        assert (mine.trace_flags, mine.trace_state, mine.is_remote) == (
            expected.trace_flags,
            expected.trace_state,
            expected.is_remote,
        )
        assert mine.trace_id and mine.span_id
    assert len({mine.trace_id for _, mine in contexts if mine is not None}) == 50


@pytest.mark.parametrize("headers", [{}, {"traceparent": SAMPLED, "tracestate": "v=1"}])
def test_a_sampled_request_gets_the_sdks_span_as_before(headers: dict[str, str]) -> None:
    provider, exporter = sdk(1.0)
    expected = sdk_span_context(provider, headers)
    parent, mine = RequestHeads(1.0, provider.id_generator).head(headers)
    assert mine is None
    span = provider.get_tracer("t").start_span("POST /v1/tasks", context=parent)
    span.end()
    made = span.get_span_context()
    assert made.trace_flags == expected.trace_flags and made.trace_flags.sampled
    assert made.trace_state == expected.trace_state
    recorded = exporter.get_finished_spans()
    assert len(recorded) == 2
    assert recorded[0].parent == recorded[1].parent  # the caller's span, or none for a root
    if headers:
        assert made.trace_id == int(CALLER_TRACE, 16)


def test_a_root_is_sampled_at_the_ratio() -> None:
    provider, _ = sdk(0.25)
    heads = RequestHeads(0.25, provider.id_generator)
    sampled = sum(heads.head({})[1] is None for _ in range(4000))
    assert 800 < sampled < 1200  # 1,000 expected; outside this band about once in 10^12


async def test_a_request_not_sampled_carries_its_callers_trace_to_the_task_unsampled(
    gateway: TestClient[Any, Any],
    finished: InMemorySpanExporter,
    settings: Settings,
    channel: AbstractChannel,
) -> None:
    url = str(gateway.make_url("")).rstrip("/")
    body = {"type": "diag.echo", "payload": {"message": "hi"}}
    accepted = await submit(url, body, {"traceparent": UNSAMPLED, "tracestate": "v=1"})
    assert accepted["trace_id"] == CALLER_TRACE
    assert server_spans(finished) == []  # not sampled: no span

    queue = await channel.declare_queue(Names(settings.namespace).work_queue("diag"), passive=True)
    message = await queue.get(timeout=5, no_ack=True)
    assert message is not None and message.message_id == accepted["id"]
    headers = message.headers or {}
    traceparent = headers["traceparent"]
    assert isinstance(traceparent, str)
    version, trace_id, span_id, flags = traceparent.split("-")
    assert (version, trace_id, flags) == ("00", CALLER_TRACE, "00")
    assert span_id != CALLER_SPAN  # the request's own span id, the task's parent
    assert headers["tracestate"] == "v=1"
