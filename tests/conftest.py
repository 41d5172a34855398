"""Fixtures on the real RabbitMQ: every test gets its own namespace and removes what it declared.

A missing broker fails the run (connect raises); nothing is skipped.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from aiohttp.test_utils import TestClient, TestServer

from tests import leftovers
from tests.demo import CATALOG, REGISTRY
from tests.processes import Child, settings_env
from tests.support import Events, capture_events
from warren.consumers.registry import Registry
from warren.consumers.runner import Consumer
from warren.service import topology
from warren.service.contracts import Catalog
from warren.service.http.app import create_app
from warren.service.settings import Settings

BROKER_URL = os.environ.get("WARREN_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")
FAST_TIERS = (0.2, 0.5, 1.0)


def make_settings(**overrides: Any) -> Settings:
    """Settings for a test: its own namespace, short retry tiers, short timeouts."""
    namespace = f"test-{uuid.uuid4().hex[:10]}"
    values: dict[str, Any] = {
        "broker_url": BROKER_URL,
        "namespace": namespace,
        "retry_tiers_seconds": FAST_TIERS,
        "retry_base_seconds": 0.2,
        "retry_max_seconds": 1.0,
        "retry_jitter": 0.0,
        "publish_timeout_seconds": 2.0,
        "connect_timeout_seconds": 5.0,
        "consumer_grace_seconds": 5.0,
        "http_port": 0,
        # Each test's gateways keep records in their own file, never the repo's var/.
        "store_url": f"sqlite:///{Path(tempfile.gettempdir()) / f'warren-{namespace}.db'}",
        "health_port": 0,  # off: in-process consumers share one registry, read via the gateway
        "log_format": "text",
        "outbound_allow_private_networks": True,  # webhook and media receivers run here
        "auth_disabled": True,  # tests/test_auth.py turns API keys on
        "running_event_delay_seconds": 0.0,  # many tests count `running` events as starts
        "app": "examples.demo.tasks",  # the repository's example app (tests.demo)
        "otel_sampling_ratio": 1.0,  # every trace whole; tests/test_tail_sampling.py sets 0
    }
    values.update(overrides)
    return leftovers.remember(Settings(**values))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Remove what tests left on the shared broker, and say which tests left it."""
    leftovers.sweep(BROKER_URL, (*CATALOG.queues, "test"))


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
async def connection() -> AsyncIterator[AbstractRobustConnection]:
    conn = await aio_pika.connect_robust(BROKER_URL)
    async with conn:
        yield conn


@pytest.fixture
async def channel(
    connection: AbstractRobustConnection, settings: Settings
) -> AsyncIterator[AbstractChannel]:
    """A channel for assertions; at teardown it deletes the test's whole topology."""
    ch = await connection.channel()
    yield ch
    cleanup = await connection.channel()
    await topology.delete(cleanup, topology.build(settings, (*CATALOG.queues, "test")))
    await cleanup.close()


@pytest.fixture
def shape(settings: Settings) -> topology.Topology:
    return topology.build(settings, CATALOG.queues)


@pytest.fixture
async def declared(channel: AbstractChannel, shape: topology.Topology) -> topology.Declared:
    return await topology.declare(channel, shape)


@pytest.fixture
async def events(channel: AbstractChannel, settings: Settings) -> Events:
    return await capture_events(channel, topology.Names(settings.namespace))


@pytest.fixture
async def gateway(
    settings: Settings, channel: AbstractChannel
) -> AsyncIterator[TestClient[Any, Any]]:
    """An HTTP client of a real gateway on a real port, connected to the real broker."""
    async with TestClient(TestServer(create_app(settings))) as client:
        yield client


StartConsumer = Callable[..., Awaitable[Consumer]]


@pytest.fixture
async def start_consumer(
    settings: Settings, channel: AbstractChannel
) -> AsyncIterator[StartConsumer]:
    """Start in-process consumers (stopped at teardown): ``await start_consumer("diag")``."""
    started: list[Consumer] = []

    async def start(
        queue: str = "diag",
        concurrency: int = 4,
        catalog: Catalog = CATALOG,
        registry: Registry = REGISTRY,
        settings_: Settings | None = None,
    ) -> Consumer:
        consumer = Consumer(settings_ or settings, catalog, registry, queue, concurrency)
        await consumer.start()
        started.append(consumer)
        return consumer

    yield start
    for consumer in started:
        await consumer.stop(grace=1)


Spawn = Callable[..., Child]


@pytest.fixture
def spawn(settings: Settings, declared: topology.Declared, tmp_path: Path) -> Iterator[Spawn]:
    """``spawn("consume", "--queue", "diag", consumer_grace_seconds=1)``: a child process.

    It depends on ``declared`` (so on ``channel``), so it is torn down first:
    every child, and whatever it started, is killed before the topology is deleted.
    """
    children: list[Child] = []

    def start(*args: str, **overrides: Any) -> Child:
        child = Child(
            list(args),
            settings_env(settings, **overrides),
            tmp_path / f"child-{len(children)}-{args[0]}.log",
        )
        children.append(child)
        return child

    try:
        yield start
    finally:
        for child in children:
            child.kill_group()
