"""Clients of a real in-process gateway (``tests/conftest.py``'s ``gateway``) on the real broker.

The async client runs on the test's loop beside the gateway; the sync client's calls
run in a thread (``asyncio.to_thread``) so that the loop keeps serving the gateway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.client.support import Front
from warren.client import AsyncClient

Gateway = TestClient[Any, Any]


@pytest.fixture
def url(gateway: Gateway) -> str:
    return str(gateway.make_url("")).rstrip("/")


@pytest.fixture
async def client(url: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(url) as opened:
        yield opened


@pytest.fixture
async def front(url: str) -> AsyncIterator[tuple[Front, str]]:
    """A ``Front`` of the gateway on a port of its own, and its URL."""
    door = Front(url)
    async with TestServer(door.app()) as server:
        yield door, str(server.make_url("")).rstrip("/")
