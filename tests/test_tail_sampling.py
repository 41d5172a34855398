"""Tail-style sampling in the consumer: successes are sampled, every failed attempt is traced.

A real consumer (in this process, so its spans land in an in-memory exporter on
the process's provider) takes tasks published to the real broker, each with the
trace context the gateway would have set.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.conftest import StartConsumer
from tests.processes import until
from tests.support import Events
from tests.test_envelope import sample_envelope
from warren.consumers.runner import Consumer
from warren.service.settings import Settings
from warren.service.store.model import new_task_id
from warren.service.telemetry import SAMPLED_BY, setup_telemetry
from warren.service.topology import Declared, Names
from warren.service.wire import Envelope

SPAN = "00f067aa0ba902b7"


@contextmanager
def finished() -> Iterator[InMemorySpanExporter]:
    """Spans ended in this process meanwhile (its provider is installed once per process, by
    the first consumer started in it)."""
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    try:
        yield exporter
    finally:
        processor.shutdown()  # the provider keeps it, but a shut-down processor exports nothing


def consumer_at(ratio: float, settings: Settings) -> Settings:
    """The test's settings with the consumer's sampling ratio at ``ratio``.

    The process's tracer provider (and its ratio, which the gateway uses) is installed
    once, here with the tests' ratio of 1: a consumer at 0 must not leave in-process
    gateways of later tests unsampled.
    """
    setup_telemetry(settings, "tests")
    return settings.model_copy(update={"otel_sampling_ratio": ratio})


@pytest.fixture
async def publish(settings: Settings, declared: Declared) -> AsyncIterator[Any]:
    exchange = declared.exchanges[Names(settings.namespace).work_exchange]

    async def send(type_: str, body: bytes, sampled: bool | None) -> Envelope:
        task_id = new_task_id()
        parent = None if sampled is None else f"00-{task_id}-{SPAN}-{'01' if sampled else '00'}"
        envelope = sample_envelope(
            id=task_id, type=type_, body=body, traceparent=parent, tracestate=None
        )
        await exchange.publish(envelope.to_message(), routing_key="diag")
        return envelope

    yield send


def attempts(exporter: InMemorySpanExporter, task_id: str) -> list[ReadableSpan]:
    """The task's ``process`` spans, by attempt."""
    found: dict[int, ReadableSpan] = {}
    for span in exporter.get_finished_spans():
        attributes = dict(span.attributes or {})
        if span.kind is trace.SpanKind.CONSUMER and attributes.get("warren.task.id") == task_id:
            attempt = attributes.get("warren.task.attempt", 0)  # 0: never ran (undecodable)
            assert isinstance(attempt, int) and attempt not in found
            found[attempt] = span
    return [found[attempt] for attempt in sorted(found)]


async def settled(consumer: Consumer) -> None:
    """Every delivery taken is settled, so each attempt's span, if any, has ended: a task's
    final event goes out before its delivery's span ends."""
    await until(lambda: consumer.inflight == 0, 10, "every delivery settled")


async def flaky_then_echo(
    consumer: Consumer, publish: Any, events: Events, *, sampled: bool
) -> tuple[Envelope, Envelope]:
    """A task that fails once then succeeds (its flag ``sampled``), and a success published
    without trace context; returns once both succeeded and every delivery is settled."""
    flaky = await publish("diag.flaky", b'{"fail_times":1}', sampled=sampled)
    echo = await publish("diag.echo", b'{"message":"hi"}', sampled=None)
    assert (await events.final(flaky.id))["attempt"] == 2
    assert (await events.final(echo.id))["status"] == "succeeded"
    await settled(consumer)
    return flaky, echo


async def test_at_ratio_0_a_failed_attempt_is_traced_and_the_success_after_it_is_not(
    settings: Settings, start_consumer: StartConsumer, publish: Any, events: Events
) -> None:
    consumer = await start_consumer("diag", settings_=consumer_at(0.0, settings))
    with finished() as exporter:
        flaky, echo = await flaky_then_echo(consumer, publish, events, sampled=False)

        # One span, for the failed attempt, kept afterwards, in the sender's trace.
        (failed,) = attempts(exporter, flaky.id)
        attributes = dict(failed.attributes or {})
        assert attributes["warren.task.attempt"] == 1
        assert attributes["warren.task.outcome"] == "retryin"
        assert attributes[SAMPLED_BY] == "outcome"
        assert failed.status.status_code is trace.StatusCode.ERROR
        assert [e.name for e in failed.events] == ["exception"]
        assert format(failed.context.trace_id, "032x") == flaky.id
        assert failed.parent is not None and format(failed.parent.span_id, "016x") == SPAN
        assert failed.start_time is not None and failed.end_time is not None
        assert failed.start_time < failed.end_time
        assert attempts(exporter, echo.id) == []  # a success, not sampled: no span at all


async def test_at_ratio_0_every_attempt_of_a_dead_task_is_traced(
    settings: Settings, start_consumer: StartConsumer, publish: Any, events: Events
) -> None:
    consumer = await start_consumer("diag", settings_=consumer_at(0.0, settings))
    with finished() as exporter:
        dead = await publish("diag.fail", b'{"permanent":false}', sampled=False)
        poison = await publish("diag.echo", b'{"message":', sampled=False)

        final = await events.final(dead.id)
        assert final["status"] == "dead" and final["attempt"] == 5
        assert (await events.final(poison.id))["status"] == "dead"
        await settled(consumer)

        spans = attempts(exporter, dead.id)
        outcomes = [(s.attributes or {})["warren.task.outcome"] for s in spans]
        assert outcomes == ["retryin"] * 4 + ["deadletter"]
        assert all(s.status.status_code is trace.StatusCode.ERROR for s in spans)
        (undecodable,) = attempts(exporter, poison.id)
        assert (undecodable.attributes or {})["warren.task.outcome"] == "dead"


async def test_at_ratio_1_every_attempt_is_traced_as_it_runs(
    settings: Settings, start_consumer: StartConsumer, publish: Any, events: Events
) -> None:
    consumer = await start_consumer("diag", settings_=consumer_at(1.0, settings))
    with finished() as exporter:
        flaky, echo = await flaky_then_echo(consumer, publish, events, sampled=True)

        first, second = attempts(exporter, flaky.id)
        assert [(s.attributes or {})[SAMPLED_BY] for s in (first, second)] == ["head", "head"]
        assert [s.status.status_code for s in (first, second)] == [
            trace.StatusCode.ERROR,
            trace.StatusCode.UNSET,
        ]
        # The retry is published from its own span, the second attempt's parent, as before.
        (retry,) = [s for s in exporter.get_finished_spans() if s.parent == first.context]
        assert second.parent is not None and second.parent.span_id == retry.context.span_id
        (root,) = attempts(exporter, echo.id)  # no trace context: sampled at the ratio
        assert root.parent is None
        assert (root.attributes or {})["warren.task.outcome"] == "succeeded"
