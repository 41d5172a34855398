"""What the clients retry, and when: through a real HTTP server in front of the gateway
that refuses or drops the requests it is told to (``tests/client/support.py``)."""

from __future__ import annotations

import asyncio

import pytest
from aio_pika.abc import AbstractChannel
from aiohttp.test_utils import TestServer

from tests.client.support import DROP, Answer, Front
from tests.processes import free_port
from tests.support import message_count
from warren.client import AsyncClient, ConnectionFailed, RateLimited, RetryPolicy, Unavailable
from warren.service.settings import Settings

ECHO = {"message": "hi"}
QUICK = RetryPolicy(backoff_seconds=0.05)


async def test_a_503_is_retried_after_its_retry_after(front: tuple[Front, str]) -> None:
    door, url = front
    door.script = [Answer("POST", 503, retry_after="1")]
    async with AsyncClient(url, retry=QUICK) as client:
        accepted = await client.submit("diag.echo", ECHO)
        assert (await client.get(accepted.id)).id == accepted.id
    refused, forwarded = door.times("POST")
    assert forwarded - refused >= 1.0  # honoured, not the 0.05 s backoff


async def test_a_429_on_a_read_is_retried_too(front: tuple[Front, str]) -> None:
    door, url = front
    door.script = [Answer("GET", 429, retry_after="1")]
    async with AsyncClient(url, retry=QUICK) as client:
        page = await client.list_page()
    assert page.items == []
    first, second = door.times("GET")
    assert second - first >= 1.0


async def test_a_retry_after_past_the_budget_is_raised_not_slept(front: tuple[Front, str]) -> None:
    door, url = front
    door.script = [Answer("POST", 429, retry_after="120")]
    async with AsyncClient(url, retry=QUICK) as client:
        with pytest.raises(RateLimited) as limited:
            await client.submit("diag.echo", ECHO)
    assert (limited.value.code, limited.value.retry_after) == ("rate-limited", 120.0)
    assert len(door.times("POST")) == 1


async def test_attempts_are_bounded(front: tuple[Front, str]) -> None:
    door, url = front
    door.script = [Answer("POST", 503, retry_after="0")] * 3
    async with AsyncClient(url, retry=RetryPolicy(attempts=2)) as client:
        with pytest.raises(Unavailable) as unavailable:
            await client.submit("diag.echo", ECHO)
    assert unavailable.value.code == "broker-unavailable"
    assert len(door.times("POST")) == 2


async def test_a_dropped_submission_is_sent_again_only_with_an_idempotency_key(
    front: tuple[Front, str], channel: AbstractChannel, settings: Settings
) -> None:
    door, url = front
    async with AsyncClient(url, retry=QUICK) as client:
        door.script = [Answer("POST", DROP)]
        with pytest.raises(ConnectionFailed) as dropped:
            await client.submit("diag.echo", ECHO)  # it may have arrived: not blindly again
        assert dropped.value.sent and len(door.times("POST")) == 1

        door.script = [Answer("POST", DROP)]
        accepted = await client.submit("diag.echo", ECHO, idempotency_key=True)
        assert len(door.times("POST")) == 3 and not accepted.replayed

        door.script = [Answer("GET", DROP)]
        assert (await client.get(accepted.id)).id == accepted.id  # a read is always safe
    assert await message_count(channel, f"{settings.namespace}.diag") == 1


async def test_a_refused_connection_is_tried_again(url: str) -> None:
    # Given a port nothing listens on yet, and a gateway front opening there in 0.3 s,
    port = free_port()
    server = TestServer(Front(url).app(), port=port)

    async def open_later() -> None:
        await asyncio.sleep(0.3)
        await server.start_server()

    opening = asyncio.create_task(open_later())
    try:
        # when a submission is refused a connection (never sent: safe to send again),
        async with AsyncClient(f"http://127.0.0.1:{port}", retry=RetryPolicy()) as client:
            accepted = await client.submit("diag.echo", ECHO)
        # then it is sent again after the backoff, and accepted.
        assert not accepted.replayed
    finally:
        await opening
        await server.close()

    async with AsyncClient("http://127.0.0.1:9", retry=RetryPolicy(attempts=2)) as nowhere:
        with pytest.raises(ConnectionFailed) as refused:
            await nowhere.submit("diag.echo", ECHO)
    assert not refused.value.sent and refused.value.__cause__ is not None
