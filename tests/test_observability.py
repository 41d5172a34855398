"""One trace per task across every hop and attempt, logs with the same ids, and exact metrics.

Gateway and consumer run as real processes exporting over OTLP/HTTP to a real
receiver in the test (``tests/otlp.py``), so what is asserted is what Jaeger
would be sent.
"""

from __future__ import annotations

import asyncio
import signal
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aio_pika.abc import AbstractChannel
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Spawn, StartConsumer
from tests.otlp import OtlpReceiver, Span
from tests.processes import Child, free_port, ready
from tests.support import Events
from warren.consumers.runner import Consumer
from warren.service.settings import Settings
from warren.service.telemetry import resource_attributes

SERVER, PRODUCER, CONSUMER = 2, 4, 5
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture
async def otlp() -> AsyncIterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


async def run_system(spawn: Spawn, otlp: OtlpReceiver) -> tuple[Child, Child, str]:
    port = free_port()
    telemetry = {"otel_endpoint": otlp.endpoint, "log_format": "json"}
    gateway = spawn("gateway", "--port", str(port), **telemetry)
    consumer = spawn("consume", "--queue", "diag", **telemetry)
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        await ready(http, f"{url}/readyz", gateway, within=20)
    await consumer.wait_log("consuming")
    return gateway, consumer, url


async def submit(url: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    """POST with the stdlib client: an instrumented aiohttp client (this process instruments
    aiohttp once an in-process gateway ran) would replace the caller's ``traceparent``."""

    def post() -> tuple[int, bytes]:
        request = urllib.request.Request(
            f"{url}/v1/tasks",
            data=orjson.dumps(body),
            headers={"Content-Type": "application/json", **headers},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()

    status, text = await asyncio.to_thread(post)
    assert status == 202, text
    accepted: dict[str, Any] = orjson.loads(text)
    return accepted


async def stop(*children: Child) -> None:
    """SIGTERM flushes each process's buffered spans before it exits."""
    for child in children:
        child.send(signal.SIGTERM)
    for child in children:
        assert await child.exit_code(within=15) == 0


def one(spans: list[Span], **match: Any) -> Span:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    assert len(found) == 1, (match, spans)
    return found[0]


@pytest.mark.slow
async def test_a_retried_task_is_one_trace_from_http_request_to_last_attempt(
    spawn: Spawn, otlp: OtlpReceiver, events: Events, settings: Settings
) -> None:
    gateway, consumer, url = await run_system(spawn, otlp)
    caller = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
    accepted = await submit(url, {"type": "diag.flaky", "payload": {"fail_times": 2}}, caller)
    assert accepted["trace_id"] == CALLER_TRACE  # the caller's trace is continued
    assert (await events.final(accepted["id"]))["attempt"] == 3
    await stop(gateway, consumer)

    # Server (one span per request: no publish span beside it), 3 attempts, 2 retry
    # publishes: all in the caller's trace.
    spans = await otlp.wait_for(CALLER_TRACE, 6)
    assert len(spans) == 6
    server = one(spans, kind=SERVER)
    assert server.parent_id == CALLER_SPAN and server.name == "POST /v1/tasks"
    # Jaeger tells the roles apart: one service per role, in the deployment's namespace.
    namespace = settings.namespace
    assert (server.resource["service.name"], server.resource["service.namespace"]) == (
        "warren-gateway",
        namespace,
    )
    assert server.attributes["warren.task.id"] == accepted["id"]
    attempts = sorted(
        (s for s in spans if s.kind == CONSUMER), key=lambda s: s.attributes["warren.task.attempt"]
    )
    assert [s.attributes["warren.task.attempt"] for s in attempts] == [1, 2, 3]
    assert {(s.resource["service.name"], s.resource["service.namespace"]) for s in attempts} == {
        ("warren-consumer-diag", namespace)
    }
    assert {s.name for s in attempts} == {"process diag"}
    assert all(s.attributes["warren.task.id"] == accepted["id"] for s in attempts)
    assert all(s.attributes["messaging.system"] == "rabbitmq" for s in attempts)
    assert [s.attributes["warren.task.outcome"] for s in attempts] == [
        "retryin",
        "retryin",
        "succeeded",
    ]
    assert [s.status_code for s in attempts] == [2, 2, 0]
    assert all("exception" in s.events for s in attempts[:2])
    # Each attempt is the child of what sent it: the gateway's request, then each retry.
    retries = [one(spans, kind=PRODUCER, parent_id=a.span_id) for a in attempts[:2]]
    assert [r.attributes["warren.retry.delay_seconds"] for r in retries] == [0.2, 0.5]
    assert attempts[0].parent_id == server.span_id
    assert attempts[1].parent_id == retries[0].span_id
    assert attempts[2].parent_id == retries[1].span_id

    # The consumer's log lines of that task carry the same ids.
    lines = [orjson.loads(line) for line in consumer.log().splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("task_id") == accepted["id"]]
    retry_lines = [line for line in mine if "retry in" in line["message"]]
    assert [line["attempt"] for line in retry_lines] == [1, 2]
    for line in retry_lines:
        assert line["level"] == "warning"
        assert line["trace_id"] == CALLER_TRACE and len(line["span_id"]) == 16
        assert line["task_type"] == "diag.flaky" and line["queue"] == "diag"
        assert line["worker"] == consumer.worker


@pytest.mark.slow
async def test_a_dead_lettered_task_trace_ends_in_the_dead_letter_step(
    spawn: Spawn, otlp: OtlpReceiver, events: Events
) -> None:
    gateway, consumer, url = await run_system(spawn, otlp)
    accepted = await submit(url, {"type": "diag.fail", "payload": {"permanent": True}}, {})
    assert (await events.final(accepted["id"]))["status"] == "dead"
    await stop(gateway, consumer)

    spans = await otlp.wait_for(accepted["trace_id"], 3)  # request, attempt, dead letter
    process = one(spans, kind=CONSUMER)
    dead = one(spans, name="dead-letter diag")
    assert dead.kind == PRODUCER and dead.parent_id == process.span_id
    assert dead.attributes["warren.dead.reason"] == "permanent"
    assert process.attributes["warren.task.outcome"] == "deadletter"
    lines = [orjson.loads(line) for line in consumer.log().splitlines() if line.startswith("{")]
    [dead_line] = [
        line
        for line in lines
        if line.get("task_id") == accepted["id"] and line["message"].startswith("dead-lettered")
    ]
    assert dead_line["level"] == "error" and dead_line["trace_id"] == accepted["trace_id"]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = frozenset((k, v) for k, v in sample.labels.items() if not k.startswith("otel"))
            found[(sample.name, labels)] = sample.value
    return found


async def scrape(
    gateway: TestClient[Any, Any],
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await gateway.get("/metrics")
    assert response.status == 200
    return samples(await response.text())


def delta(before: dict[Any, float], after: dict[Any, float], name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_metrics_move_by_exactly_what_happened(
    gateway: TestClient[Any, Any], start_consumer: StartConsumer, events: Events
) -> None:
    await start_consumer("diag")
    before = await scrape(gateway)
    ids = []
    for body in (
        {"type": "diag.echo", "payload": {"message": "a"}},
        {"type": "diag.echo", "payload": {"message": "b"}},
        {"type": "diag.fail", "payload": {"permanent": True}},
    ):
        response = await gateway.post("/v1/tasks", json=body)
        ids.append((await response.json())["id"])
    for bad in ({"type": "diag.echo", "payload": {}}, {"type": "nope.nope", "payload": {}}):
        assert (await gateway.post("/v1/tasks", json=bad)).status == 422
    for task_id in ids:
        await events.final(task_id)
    await asyncio.sleep(0.1)  # the ack after the final event
    after = await scrape(gateway)

    submitted = "warren_submissions_total"
    assert delta(before, after, submitted, type="diag.echo", outcome="accepted", reason="") == 2
    assert delta(before, after, submitted, type="diag.fail", outcome="accepted", reason="") == 1
    assert (
        delta(
            before,
            after,
            submitted,
            type="(invalid)",
            outcome="rejected",
            reason="validation-failed",
        )
        == 2
    )
    delivered = "warren_deliveries_total"
    assert delta(before, after, delivered, queue="diag", type="diag.echo", outcome="succeeded") == 2
    assert delta(before, after, delivered, queue="diag", type="diag.fail", outcome="dead") == 1
    handled = "warren_handler_duration_seconds_count"
    assert delta(before, after, handled, queue="diag", type="diag.echo") == 2
    assert delta(before, after, "warren_publish_confirm_seconds_count", exchange="tasks") == 3
    assert after[("warren_inflight_tasks", frozenset({("queue", "diag")}))] == 0


async def test_consumer_serves_health_readiness_and_queue_depths(
    settings: Settings, channel: AbstractChannel
) -> None:
    from tests.demo import CATALOG, REGISTRY

    port = free_port()
    consumer = Consumer(settings, CATALOG, REGISTRY, "diag", concurrency=2, health_port=port)
    await consumer.start()
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as alive:
                assert alive.status == 200
            async with http.get(f"{base}/readyz") as readiness:
                assert readiness.status == 200
            async with http.get(f"{base}/metrics") as scraped:
                found = samples(await scraped.text())
        depth = ("warren_queue_messages", frozenset({("queue", "diag"), ("kind", "work")}))
        assert found[depth] == 0
    finally:
        await consumer.stop(grace=1)
    assert not consumer.ready


@pytest.mark.parametrize(
    "traceparent",
    ["garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-" + "x" * 60],
)
async def test_a_malformed_traceparent_is_ignored_never_an_error(
    gateway: TestClient[Any, Any], traceparent: str
) -> None:
    url = str(gateway.make_url("")).rstrip("/")
    body = {"type": "diag.echo", "payload": {"message": "hi"}}
    accepted = await submit(url, body, {"traceparent": traceparent})
    assert len(accepted["trace_id"]) == 32 and accepted["trace_id"] != "0" * 32


async def test_a_task_record_links_to_its_trace_in_jaeger(
    settings: Settings, channel: AbstractChannel
) -> None:
    from aiohttp.test_utils import TestServer

    from warren.service.http.app import create_app

    linked = settings.model_copy(update={"jaeger_ui_url": "http://jaeger.example:16686/"})
    async with TestClient(TestServer(create_app(linked))) as gateway:
        response = await gateway.post(
            "/v1/tasks", json={"type": "diag.echo", "payload": {"message": "hi"}}
        )
        accepted = await response.json()
        record = await (await gateway.get(f"/v1/tasks/{accepted['id']}")).json()
    assert record["trace_id"] == accepted["trace_id"]
    assert record["trace_url"] == f"http://jaeger.example:16686/trace/{accepted['trace_id']}"


def test_service_name_is_one_per_role_unless_the_operator_names_it(settings: Settings) -> None:
    consumer = resource_attributes(settings, "consumer-email")
    assert consumer["service.name"] == "warren-consumer-email"
    assert consumer["service.namespace"] == settings.namespace
    named = settings.model_copy(update={"otel_service_name": "shop-gateway"})  # the operator's
    assert resource_attributes(named, "gateway")["service.name"] == "shop-gateway"
