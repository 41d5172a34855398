"""The gateway tests of this folder share one gateway and namespace per module.

Why: there are ~200 bad-input cases and starting a gateway (connection,
topology) costs ~0.15 s, so unlike ``tests/conftest``'s per-test fixtures
these have module scope (same names, overriding them) and the work queues are
emptied before each test instead. A module may override ``settings``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aio_pika
import pytest
import pytest_asyncio
from aio_pika.abc import AbstractChannel
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import BROKER_URL, make_settings
from tests.demo import CATALOG
from tests.http.support import Client
from warren.service import topology
from warren.service.http.app import create_app
from warren.service.settings import Settings
from warren.service.topology import Topology


@pytest.fixture(scope="module")
def settings() -> Settings:
    return make_settings()


@pytest.fixture(scope="module")
def shape(settings: Settings) -> Topology:
    return topology.build(settings, CATALOG.queues)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def channel(settings: Settings) -> AsyncIterator[AbstractChannel]:
    """A channel for assertions; at teardown it deletes the module's whole topology."""
    async with await aio_pika.connect_robust(BROKER_URL) as connection:
        yield await connection.channel()
        await topology.delete(await connection.channel(), topology.build(settings, CATALOG.queues))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(settings: Settings, channel: AbstractChannel) -> AsyncIterator[Client]:
    async with TestClient(TestServer(create_app(settings))) as client:
        yield client


@pytest_asyncio.fixture(autouse=True, loop_scope="module")
async def empty_work_queues(gateway: Client, channel: AbstractChannel, shape: Topology) -> None:
    for queue in CATALOG.queues:
        work = await channel.declare_queue(shape.names.work_queue(queue), passive=True)
        await work.purge()
