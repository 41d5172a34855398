"""Idempotency-Key on POST /v1/tasks: one task per (client, key), also under concurrency."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from aio_pika.abc import AbstractChannel
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import make_settings
from tests.store.support import Client
from tests.support import message_count
from warren.service.http.app import create_app
from warren.service.settings import Settings
from warren.service.topology import Topology

BODY = {"type": "diag.echo", "payload": {"message": "once"}}


async def post(gateway: Client, body: dict[str, Any], key: str, client: str = "shop") -> Any:
    headers = {"Idempotency-Key": key, "X-Warren-Client": client}
    return await gateway.post("/v1/tasks", json=body, headers=headers)


async def test_the_same_key_returns_the_original_task(
    gateway: Client, channel: AbstractChannel, shape: Topology
) -> None:
    first = await post(gateway, BODY, "order-1")
    assert first.status == 202
    original = await first.json()
    again = await post(gateway, BODY, "order-1")
    assert again.status == 200 and again.headers["Idempotent-Replayed"] == "true"
    replayed = await again.json()
    assert replayed["id"] == original["id"] and replayed["trace_id"] == original["trace_id"]
    assert replayed["created_at"] == original["created_at"]
    assert again.headers["Location"] == f"/v1/tasks/{original['id']}"
    other_client = await post(gateway, BODY, "order-1", client="bank")
    assert other_client.status == 202 and (await other_client.json())["id"] != original["id"]
    assert await message_count(channel, shape.names.work_queue("diag")) == 2


async def test_another_submission_with_a_used_key_is_a_conflict(gateway: Client) -> None:
    assert (await post(gateway, BODY, "k")).status == 202
    changed = await post(gateway, {**BODY, "payload": {"message": "twice"}}, "k")
    assert changed.status == 409 and (await changed.json())["code"] == "idempotency-key-reused"
    bad = await post(gateway, BODY, "x" * 256)
    assert bad.status == 400


async def test_the_delay_is_part_of_what_a_key_names(gateway: Client) -> None:
    # Given a task delayed by 60 s under a key
    first = await post(gateway, {**BODY, "delay_seconds": 60}, "later")
    assert first.status == 202 and (await first.json())["status"] == "scheduled"
    # When the same delay is sent again (59.2 s is 60 once rounded up), Then it is a replay
    again = await post(gateway, {**BODY, "delay_seconds": 59.2}, "later")
    assert again.status == 200 and again.headers["Idempotent-Replayed"] == "true"
    # When another delay, a due time or no delay is sent with that key, Then a 409 each
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    for other in ({"delay_seconds": 61}, {"run_at": tomorrow.isoformat()}, {}):
        changed = await post(gateway, {**BODY, **other}, "later")
        assert changed.status == 409, other
        assert (await changed.json())["code"] == "idempotency-key-reused"
    # And a due time matches the same instant, whatever its offset
    paris = timezone(timedelta(hours=1))
    at = await post(gateway, {**BODY, "run_at": tomorrow.astimezone(paris).isoformat()}, "at")
    assert at.status == 202
    same = await post(gateway, {**BODY, "run_at": tomorrow.isoformat()}, "at")
    assert same.status == 200 and (await same.json())["id"] == (await at.json())["id"]
    later = (tomorrow + timedelta(seconds=1)).isoformat()
    assert (await post(gateway, {**BODY, "run_at": later}, "at")).status == 409


async def test_concurrent_duplicates_make_one_task_and_one_message(
    gateway: Client, channel: AbstractChannel, shape: Topology
) -> None:
    responses = await asyncio.gather(*(post(gateway, BODY, "burst") for _ in range(25)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] * 24 + [202], statuses
    ids = {(await r.json())["id"] for r in responses}
    assert len(ids) == 1
    assert await message_count(channel, shape.names.work_queue("diag")) == 1


async def test_a_failed_publish_releases_the_key(
    settings: Settings, channel: AbstractChannel
) -> None:
    """With a full work queue the broker refuses the publish: 429, and the key stays free."""
    full = make_settings(
        namespace=settings.namespace, store_url=settings.store_url, max_queue_length=1
    )  # the same namespace, so the `channel` fixture deletes this topology too
    async with TestClient(TestServer(create_app(full))) as gateway:
        assert (await gateway.post("/v1/tasks", json=BODY)).status == 202  # fills the queue
        refused = await post(gateway, BODY, "retry-me")
        assert refused.status == 429 and (await refused.json())["code"] == "queue-full"
        underlay = await channel.get_underlay_channel()
        await underlay.queue_purge(f"{settings.namespace}.diag")
        accepted = await post(gateway, BODY, "retry-me")
        assert accepted.status == 202
        assert (await post(gateway, BODY, "retry-me")).status == 200
