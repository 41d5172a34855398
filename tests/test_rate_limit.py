"""Per-client rate limits on the real gateway: 429 + Retry-After past the burst, nothing
published, each client its own budget, and the budget comes back with time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aio_pika.abc import AbstractChannel
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import make_settings
from tests.support import message_count
from tests.test_auth import ECHO, bearer, key_entry
from warren.service.http.app import create_app
from warren.service.http.ratelimit import MAX_BUCKETS, Rate, RateLimiter
from warren.service.settings import Settings

Client = TestClient[Any, Any]


def limited(settings: Settings, **overrides: Any) -> Settings:
    """Keys on, 1 request/s with a burst of 3, in the test's namespace."""
    keys = [key_entry("shop"), key_entry("bank")]
    values: dict[str, Any] = {
        "auth_disabled": False,
        "api_keys": json.dumps(keys),
        "rate_limit_per_second": 1.0,
        "rate_limit_burst": 3,
    }
    return make_settings(
        namespace=settings.namespace, store_url=settings.store_url, **{**values, **overrides}
    )


@pytest.fixture
async def gateway_limited(settings: Settings, channel: AbstractChannel) -> AsyncIterator[Client]:
    async with TestClient(TestServer(create_app(limited(settings)))) as client:
        yield client


async def test_past_the_burst_it_is_429_with_retry_after_and_nothing_is_published(
    gateway_limited: Client, channel: AbstractChannel, settings: Settings
) -> None:
    for _ in range(3):
        response = await gateway_limited.post("/v1/tasks", json=ECHO, headers=bearer("shop"))
        assert response.status == 202, await response.text()
    refused = await gateway_limited.post("/v1/tasks", json=ECHO, headers=bearer("shop"))
    assert refused.status == 429
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    body = await refused.json()
    assert (body["code"], body["status"], body["title"]) == (
        "rate-limited",
        429,
        "Too Many Requests",
    )
    assert refused.headers["Retry-After"] == "1"  # under 1 s to the next token, rounded up
    assert await message_count(channel, f"{settings.namespace}.diag") == 3
    # Reading spends the same budget.
    assert (await gateway_limited.get("/v1/tasks", headers=bearer("shop"))).status == 429

    # Another client has its own budget; probes and scrape spend none.
    assert (await gateway_limited.get("/v1/tasks", headers=bearer("bank"))).status == 200
    for _ in range(5):
        assert (await gateway_limited.get("/healthz")).status == 200

    await asyncio.sleep(float(refused.headers["Retry-After"]))  # one token back (1/s)
    again = await gateway_limited.post("/v1/tasks", json=ECHO, headers=bearer("shop"))
    assert again.status == 202, await again.text()
    assert await message_count(channel, f"{settings.namespace}.diag") == 4
    metrics = await (await gateway_limited.get("/metrics")).text()
    assert 'reason="rate-limited"' in metrics


async def test_a_key_can_override_the_burst_and_rate(
    settings: Settings, channel: AbstractChannel
) -> None:
    unlimited = key_entry("bank", rate_limit_per_second=0)  # 0: no limit for this key
    # A token per 100 s: the 7th request is refused however slow this machine is.
    keys = [key_entry("ops", rate_limit_per_second=0.01, rate_limit_burst=6), unlimited]
    app = create_app(limited(settings, api_keys=json.dumps(keys)))
    async with TestClient(TestServer(app)) as gateway:
        statuses = [
            (await gateway.get("/v1/tasks", headers=bearer("ops"))).status for _ in range(7)
        ]
        assert statuses == [200] * 6 + [429]
        for _ in range(10):
            assert (await gateway.get("/v1/tasks", headers=bearer("bank"))).status == 200


async def test_with_authentication_off_the_budget_is_per_x_warren_client(
    settings: Settings, channel: AbstractChannel
) -> None:
    slow = {"rate_limit_per_second": 0.01, "rate_limit_burst": 2}
    app = create_app(limited(settings, auth_disabled=True, **slow))
    async with TestClient(TestServer(app)) as gateway:

        async def status(**headers: str) -> int:
            return (await gateway.get("/v1/tasks", headers=headers)).status

        assert [await status(**{"X-Warren-Client": "a"}) for _ in range(3)] == [200, 200, 429]
        assert await status(**{"X-Warren-Client": "b"}) == 200
        # Without a name, the peer address is the client.
        assert [await status() for _ in range(3)] == [200, 200, 429]


async def test_no_limit_by_default(gateway: Client) -> None:
    for _ in range(40):
        assert (await gateway.get("/v1/tasks")).status == 200


def test_the_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    now = [100.0]
    limiter = RateLimiter(clock=lambda: now[0])
    rate = Rate(per_second=0.25, burst=2)
    assert [limiter.take("a", rate) for _ in range(2)] == [0.0, 0.0]
    assert limiter.take("a", rate) == pytest.approx(4.0)  # a token per 4 s
    now[0] += 3.0
    assert limiter.take("a", rate) == pytest.approx(1.0)
    now[0] += 1000.0  # long idle: back to the burst, no more
    assert [limiter.take("a", rate) > 0 for _ in range(3)] == [False, False, True]


def test_the_buckets_are_bounded() -> None:
    limiter = RateLimiter(clock=lambda: 0.0)
    rate = Rate(per_second=1.0, burst=1)
    assert limiter.take("first", rate) == 0.0
    for i in range(MAX_BUCKETS):
        limiter.take(f"client-{i}", rate)
    assert limiter.take("first", rate) == 0.0  # its bucket was dropped: full again
