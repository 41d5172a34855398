"""``warren.Client`` and ``warren.AsyncClient``: queues, dead letters, replay and discard."""

from __future__ import annotations

import asyncio

from tests.conftest import StartConsumer
from tests.dead_letters.support import Gateway, submit, wait_dead, wait_status
from tests.dead_letters.test_dead_letters import FLAKY_ONCE
from warren.client import AsyncClient, Client, NotFound


async def test_the_async_client_browses_replays_and_discards(
    gateway: Gateway, start_consumer: StartConsumer
) -> None:
    await start_consumer("diag")
    ids = [await submit(gateway, FLAKY_ONCE) for _ in range(3)]
    await wait_dead(gateway, 3)
    async with AsyncClient(str(gateway.make_url(""))) as client:
        [diag] = [q for q in await client.queues() if q.name == "diag"]
        page = await client.dead_letters(type="diag.flaky", limit=2)
        rest = await client.dead_letters(type="diag.flaky", cursor=page.next_cursor)
        one = await client.dead_letter(ids[0])
        replayed = await client.replay(ids[:2])
        discarded = await client.discard(filter={"type": "diag.flaky"})
        again = await client.replay(ids[:2])

    assert diag.dead_letters == 3 and diag.consumers == 1
    assert {x.id for x in [*page.items, *rest.items]} == set(ids) and rest.next_cursor is None
    assert one.payload == {"fail_times": 1} and one.reason == "attempts-exhausted"
    assert (replayed, discarded, again) == (2, 1, 0)
    await wait_status(gateway, ids[:2], "succeeded")


async def test_the_sync_client_says_not_found_for_a_letter_that_is_gone(gateway: Gateway) -> None:
    def read() -> None:
        with Client(str(gateway.make_url(""))) as client:
            assert client.dead_letters().items == []
            client.dead_letter("0" * 32)

    try:
        await asyncio.to_thread(read)
    except NotFound:
        return
    raise AssertionError("no NotFound")
