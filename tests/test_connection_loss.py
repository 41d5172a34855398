"""Losing the broker connection: the gateway answers 503 and loses nothing; both sides recover.

The connection runs through a TCP proxy the test can cut, so the machine's
RabbitMQ itself is never touched.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aio_pika.abc import AbstractChannel
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import StartConsumer
from tests.support import Events, TcpProxy, message_count, queue_counts
from tests.test_envelope import sample_envelope
from warren.service.http.app import create_app
from warren.service.settings import Settings
from warren.service.topology import Declared, Names

ECHO = {"type": "diag.echo", "payload": {"message": "hi"}}


@pytest.fixture
async def proxy(settings: Settings) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy("127.0.0.1", 5672)
    await proxy.start()
    yield proxy
    await proxy.cut()


def through(proxy: TcpProxy, settings: Settings) -> Settings:
    url = settings.broker_url.replace(":5672", f":{proxy.port}")
    return settings.model_copy(update={"broker_url": url})


async def eventually_status(client: TestClient[Any, Any], status: int, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while (await client.get("/readyz")).status != status:  # noqa: ASYNC110 - polls HTTP
            await asyncio.sleep(0.1)


async def test_gateway_answers_503_without_broker_and_recovers(
    proxy: TcpProxy, settings: Settings, channel: AbstractChannel
) -> None:
    names = Names(settings.namespace)
    async with TestClient(TestServer(create_app(through(proxy, settings)))) as gateway:
        assert (await gateway.post("/v1/tasks", json=ECHO)).status == 202

        await proxy.cut()
        await eventually_status(gateway, 503, timeout=5)
        refused = await gateway.post("/v1/tasks", json=ECHO)
        assert refused.status == 503
        assert refused.headers["Retry-After"] == str(settings.retry_after_seconds)
        assert refused.content_type == "application/problem+json"
        assert (await refused.json())["code"] == "broker-unavailable"

        await proxy.restore()
        await eventually_status(gateway, 200, timeout=20)
        assert (await gateway.post("/v1/tasks", json=ECHO)).status == 202
    # Exactly the two accepted tasks are on the broker: the refused one was not half-sent.
    assert await message_count(channel, names.work_queue("diag")) == 2


async def test_consumer_resumes_after_connection_loss_and_redelivers_interrupted_work(
    proxy: TcpProxy,
    settings: Settings,
    declared: Declared,
    start_consumer: StartConsumer,
    events: Events,
    channel: AbstractChannel,
) -> None:
    names = Names(settings.namespace)
    await start_consumer("diag", concurrency=2, settings_=through(proxy, settings))
    exchange = declared.exchanges[names.work_exchange]
    interrupted = sample_envelope(type="diag.sleep", body=b'{"ms":1000}')
    await exchange.publish(interrupted.to_message(), routing_key="diag")
    await events.wait_for(lambda _: bool(events.of(interrupted.id, "running")))

    await proxy.cut()
    await asyncio.sleep(0.5)
    await proxy.restore()

    after = sample_envelope()
    await exchange.publish(after.to_message(), routing_key="diag")
    assert (await events.final(after.id, timeout=30))["status"] == "succeeded"
    assert (await events.final(interrupted.id, timeout=30))["status"] == "succeeded"
    # The consumer is attached again (not silently detached after the reconnect).
    assert await queue_counts(channel, names.work_queue("diag")) == (0, 1)
