"""``POST /v1/tasks/batch``: each task its own outcome, in order, as it would have been alone;
exactly the accepted tasks published; idempotency keys, task types and rate limits per task."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aio_pika.abc import AbstractChannel
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import make_settings
from tests.support import message_count
from tests.test_auth import ECHO, bearer, key_entry, keyed_settings
from warren.service.http.app import create_app
from warren.service.settings import Settings
from warren.service.topology import Topology

Client = TestClient[Any, Any]


def echo(message: str, **options: Any) -> dict[str, Any]:
    return {"type": "diag.echo", "payload": {"message": message}, **options}


async def post_batch(
    client: Client, tasks: list[Any], headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    response = await client.post("/v1/tasks/batch", json={"tasks": tasks}, headers=headers)
    assert response.status == 200, await response.text()
    items: list[dict[str, Any]] = (await response.json())["items"]
    assert len(items) == len(tasks)
    return items


@asynccontextmanager
async def gateway_with(settings: Settings, **overrides: Any) -> AsyncIterator[Client]:
    """A gateway in the test's namespace (the `channel` fixture cleans up) with overrides."""
    values = {"namespace": settings.namespace, "store_url": settings.store_url, **overrides}
    async with TestClient(TestServer(create_app(make_settings(**values)))) as client:
        yield client


async def test_500_tasks_with_3_invalid_give_497_accepted_3_problems_and_497_publishes(
    gateway: Client, channel: AbstractChannel, shape: Topology
) -> None:
    # Given a batch of 500 tasks, three of them invalid in three ways
    tasks: list[Any] = [echo(f"m{i}") for i in range(500)]
    tasks[7] = {"type": "diag.echo", "payload": {"nope": 1}}  # bad payload
    tasks[250] = {"type": "diag.unknown", "payload": {}}  # unknown type
    tasks[499] = echo("x", max_attempts=1000)  # beyond the type's cap
    # When it is submitted
    items = await post_batch(gateway, tasks)
    # Then each answer is in its task's place, and the refused ones say why, as alone
    problems = [i for i, item in enumerate(items) if "problem" in item]
    assert problems == [7, 250, 499]
    for index in problems:
        alone = await gateway.post("/v1/tasks", json=tasks[index])
        expected = await alone.json()
        del expected["instance"]
        assert items[index]["problem"] == expected
    accepted = [item for item in items if "problem" not in item]
    assert len(accepted) == 497 and len({item["id"] for item in accepted}) == 497
    assert all(item["status"] == "queued" and item["queue"] == "diag" for item in accepted)
    # and exactly the accepted tasks were published
    assert await message_count(channel, shape.names.work_queue("diag")) == 497
    # and each is a task the API knows
    record = await (await gateway.get(f"/v1/tasks/{accepted[-1]['id']}")).json()
    assert record["status"] == "queued" and record["trace_id"] == accepted[-1]["trace_id"]


async def test_idempotency_keys_are_per_task(
    gateway: Client, channel: AbstractChannel, shape: Topology
) -> None:
    first = await post_batch(gateway, [echo("a", idempotency_key="k-a"), echo("b")])
    # The same key and task again: the original task, nothing published; a key twice in
    # one batch: the second is refused; another body with a used key: 409.
    again = await post_batch(
        gateway,
        [
            echo("a", idempotency_key="k-a"),
            echo("c", idempotency_key="k-c"),
            echo("d", idempotency_key="k-c"),
            echo("e", idempotency_key=""),
        ],
    )
    assert again[0]["id"] == first[0]["id"] and again[0]["replayed"] is True
    assert "id" in again[1] and "replayed" not in again[1]
    assert again[2]["problem"]["code"] == "idempotency-key-in-use"
    assert again[3]["problem"]["code"] == "invalid-idempotency-key"
    changed = await post_batch(gateway, [echo("changed", idempotency_key="k-a")])
    assert changed[0]["problem"]["code"] == "idempotency-key-reused"
    assert await message_count(channel, shape.names.work_queue("diag")) == 3  # a, b, c
    # and the single route honours a batch task's key
    alone = await gateway.post("/v1/tasks", json=echo("c"), headers={"Idempotency-Key": "k-c"})
    assert alone.status == 200 and (await alone.json())["id"] == again[1]["id"]


async def test_a_batch_items_key_compares_the_delay_as_the_single_route_does(
    gateway: Client, channel: AbstractChannel, shape: Topology
) -> None:
    # Given a delayed task accepted under a key in a batch
    first = await post_batch(gateway, [echo("a", idempotency_key="k-d", delay_seconds=60)])
    assert first[0]["status"] == "scheduled"
    # When the same body comes again with the same delay, another delay, or none
    again = await post_batch(gateway, [echo("a", idempotency_key="k-d", delay_seconds=60)])
    other = await post_batch(gateway, [echo("a", idempotency_key="k-d", delay_seconds=61)])
    none = await post_batch(gateway, [echo("a", idempotency_key="k-d")])
    # Then the same delay is a replay and another one, or none, is refused
    assert again[0]["id"] == first[0]["id"] and again[0]["replayed"] is True
    assert other[0]["problem"]["code"] == "idempotency-key-reused"
    assert none[0]["problem"]["code"] == "idempotency-key-reused"


async def test_a_task_type_the_key_may_not_submit_is_that_tasks_403(
    settings: Settings, channel: AbstractChannel
) -> None:
    async with TestClient(TestServer(create_app(keyed_settings(settings)))) as client:
        sleep = {"type": "diag.sleep", "payload": {"ms": 1}}
        items = await post_batch(client, [ECHO, sleep], bearer("echoer"))
        assert "id" in items[0]
        assert items[1]["problem"]["status"] == 403
        assert items[1]["problem"]["code"] == "forbidden-type"
        reader = await client.post(
            "/v1/tasks/batch", json={"tasks": [ECHO]}, headers=bearer("reader")
        )
        assert reader.status == 403  # no submit scope: the whole batch


async def test_a_batch_of_n_spends_n_requests_of_the_rate_limit(
    settings: Settings, channel: AbstractChannel
) -> None:
    keys = json.dumps([key_entry("shop")])
    limits = {"auth_disabled": False, "api_keys": keys, "rate_limit_per_second": 0.01}
    async with gateway_with(settings, rate_limit_burst=3, **limits) as client:
        items = await post_batch(client, [echo(str(i)) for i in range(5)], bearer("shop"))
        assert ["id" in item for item in items] == [True, True, True, False, False]
        assert items[3]["problem"]["code"] == "rate-limited"
        assert items[3]["problem"]["retry_after"] >= 1


async def test_a_full_queue_refuses_the_tasks_past_its_length(
    settings: Settings, channel: AbstractChannel, shape: Topology
) -> None:
    async with gateway_with(settings, max_queue_length=2) as client:
        items = await post_batch(client, [echo(str(i)) for i in range(5)])
        assert ["id" in item for item in items] == [True, True, False, False, False]
        assert {item["problem"]["code"] for item in items[2:]} == {"queue-full"}
        assert items[2]["problem"]["status"] == 429 and items[2]["problem"]["retry_after"] >= 1
        assert await message_count(channel, shape.names.work_queue("diag")) == 2


async def test_a_body_that_is_not_a_batch_is_refused_whole(
    settings: Settings, channel: AbstractChannel
) -> None:
    async with gateway_with(settings, max_batch_tasks=3) as client:
        bodies: list[Any] = [
            {"tasks": []},
            {"tasks": [ECHO] * 4},
            [ECHO],
            {"tasks": [ECHO], "x": 1},
        ]
        for body in bodies:
            response = await client.post("/v1/tasks/batch", json=body)
            assert response.status == 422, body
            assert (await response.json())["code"] == "validation-failed"
        assert (await client.post("/v1/tasks/batch", data=b"{")).status == 415


async def test_a_task_larger_than_a_single_body_may_be_is_that_tasks_413(
    settings: Settings, channel: AbstractChannel
) -> None:
    async with gateway_with(settings, max_body_bytes=1024) as client:
        items = await post_batch(client, [echo("x" * 2000), echo("small")])
        assert items[0]["problem"]["status"] == 413 and "id" in items[1]
