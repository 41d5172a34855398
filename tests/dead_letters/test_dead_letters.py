"""Dead letters browsed without being consumed, replayed once, discarded; on both stores.

Why: the README promises dead letters are "kept until inspected or replayed". An operator
relies on a listing that changes nothing (same list twice, same depth), on a replay that
runs each task exactly once more however often it is asked, and on a discard that is final.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from aio_pika.abc import AbstractChannel

from tests.conftest import StartConsumer, make_settings
from tests.dead_letters.support import (
    Gateway,
    all_dead,
    get_json,
    post_json,
    submit,
    wait_dead,
    wait_status,
)
from tests.support import Events
from warren.service.settings import Settings

FLAKY_ONCE = {"type": "diag.flaky", "payload": {"fail_times": 1}, "max_attempts": 1}


async def queue_state(gateway: Gateway, name: str) -> dict[str, Any]:
    body = await get_json(gateway, "/v1/queues")
    [state] = [q for q in body["queues"] if q["name"] == name]
    found: dict[str, Any] = state
    return found


async def test_listing_twice_gives_the_same_list_and_leaves_the_depth_unchanged(
    gateway: Gateway, start_consumer: StartConsumer
) -> None:
    # Given five tasks that died for good
    await start_consumer("diag")
    body = {"type": "diag.fail", "payload": {"permanent": True}}
    ids = {await submit(gateway, body) for _ in range(5)}
    first = await wait_dead(gateway, 5)
    depth = (await queue_state(gateway, "diag"))["dead_letters"]

    # When they are listed again, and one is read whole
    second = await all_dead(gateway)
    one = await get_json(gateway, f"/v1/dead-letters/{first[0]['id']}")

    # Then nothing moved
    assert first == second and {x["id"] for x in first} == ids
    assert depth == 5 == (await queue_state(gateway, "diag"))["dead_letters"]
    assert [x["dead_at"] for x in first] == sorted((x["dead_at"] for x in first), reverse=True)
    assert one["payload"] == {"permanent": True} and one["payload_kept"] is True
    assert one["reason"] == "permanent" and one["error_type"] == "Permanent"
    assert one["attempts"] == 1 and one["type"] == "diag.fail" and one["queue"] == "diag"
    assert one["payload_size"] == len(b'{"permanent":true}')
    assert len(await all_dead(gateway, "&reason=permanent&type=diag.fail&queue=diag")) == 5
    assert await all_dead(gateway, "&reason=attempts-exhausted") == []
    assert await all_dead(gateway, "&since=2999-01-01T00:00:00%2B00:00") == []
    await get_json(gateway, "/v1/dead-letters/" + "0" * 32, status=404)
    await get_json(gateway, "/v1/dead-letters?cursor=nope", status=400)


async def test_a_replay_of_100_dead_flaky_tasks_runs_each_once_more_and_a_second_moves_nothing(
    gateway: Gateway, start_consumer: StartConsumer, events: Events
) -> None:
    # Given 100 diag.flaky tasks dead after their one allowed attempt
    await start_consumer("diag", concurrency=16)
    ids = [await submit(gateway, FLAKY_ONCE) for _ in range(100)]
    await wait_dead(gateway, 100, "&type=diag.flaky")

    # When a filter replays them, twice
    selection = {"filter": {"queue": "diag", "type": "diag.flaky"}}
    first = await post_json(gateway, "/v1/dead-letters/replay", selection)
    records = await wait_status(gateway, ids, "succeeded")
    second = await post_json(gateway, "/v1/dead-letters/replay", selection)

    # Then each ran once more (attempt 2 of a fresh budget), and none is left behind
    assert first == {"replayed": 100} and second == {"replayed": 0}
    assert await all_dead(gateway) == []
    for record in records:
        assert record["attempt"] == 2 and record["max_attempts"] == 2
        assert record["result"] == {"succeeded_on_attempt": 2}
        assert record["reason"] is None
        replayed = [a for a in record["attempts"] if a["replayed_at"] is not None]
        assert [a["attempt"] for a in replayed] == [2]
    await events.wait_for(lambda _: all(events.of(i, "succeeded") for i in ids))
    runs = Counter(e["task_id"] for e in events.items if e["status"] == "running")
    assert runs == Counter({i: 2 for i in ids})  # attempt 1, and the replay's attempt 2
    assert (await queue_state(gateway, "diag"))["dead_letters"] == 0


async def test_discard_by_ids_is_final_and_safe_to_repeat(
    gateway: Gateway, start_consumer: StartConsumer
) -> None:
    await start_consumer("diag")
    ids = [await submit(gateway, FLAKY_ONCE) for _ in range(3)]
    await wait_dead(gateway, 3)

    gone = await post_json(gateway, "/v1/dead-letters/discard", {"ids": ids[:2]})
    again = await post_json(gateway, "/v1/dead-letters/discard", {"ids": ids[:2]})

    assert gone == {"discarded": 2} and again == {"discarded": 0}
    assert [x["id"] for x in await all_dead(gateway)] == [ids[2]]
    await wait_status(gateway, ids, "dead")  # discarding leaves the records as they were
    await post_json(gateway, "/v1/dead-letters/replay", {"ids": ["nope"]}, status=422)
    await post_json(gateway, "/v1/dead-letters/replay", {}, status=422)
    await post_json(gateway, "/v1/dead-letters/replay", {"ids": [], "filter": {}}, status=422)


async def test_a_payload_over_the_size_bound_is_listed_but_not_replayed(
    settings: Settings, channel: AbstractChannel, start_consumer: StartConsumer
) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from warren.service.http.app import create_app

    small = settings.model_copy(update={"dead_letter_max_bytes": 4})
    async with TestClient(TestServer(create_app(small))) as gateway:
        await start_consumer("diag")
        task_id = await submit(gateway, FLAKY_ONCE)
        [letter] = await wait_dead(gateway, 1)
        one = await get_json(gateway, f"/v1/dead-letters/{task_id}")
        replayed = await post_json(gateway, "/v1/dead-letters/replay", {"ids": [task_id]})

    assert letter["payload_size"] > 4 and one["payload_kept"] is False
    assert one["payload"] is None and replayed == {"replayed": 0}


def test_the_bounds_are_settings() -> None:
    settings = make_settings(dead_letter_retention_days=2, dead_letter_max_bytes=1000)
    assert settings.dead_letter_retention_days == 2 and settings.dead_letter_max_bytes == 1000
