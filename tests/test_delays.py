"""Delayed tasks: ``delay_seconds`` / ``run_at`` on a submission, waiting on the broker's ladder."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from tests.conftest import StartConsumer, make_settings
from tests.store.support import Client, get_task, status_becomes, submit
from tests.support import Events
from warren.service import topology
from warren.service.amqp import Publisher
from warren.service.delays import delay_until, publish_delayed
from warren.service.settings import Settings
from warren.service.store.model import new_task_id
from warren.service.topology import MAX_DELAY_SECONDS, Names
from warren.service.wire import Envelope

ECHO = {"type": "diag.echo", "payload": {"message": "later"}}


def test_a_delay_key_spells_the_seconds_in_binary_then_the_queue() -> None:
    assert Names.delay_key("email", 6) == "0." * 19 + "1.1.0.email"
    assert Names.delay_key("diag", 0) == "0." * 22 + "diag"
    assert Names.delay_key("diag", MAX_DELAY_SECONDS) == "1." * 22 + "diag"
    with pytest.raises(ValueError, match="delay"):
        Names.delay_key("diag", MAX_DELAY_SECONDS + 1)
    assert MAX_DELAY_SECONDS >= 30 * 86_400


def test_a_delay_is_rounded_up_to_the_second_never_down() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert delay_until(now + timedelta(seconds=2.001), now) == 3
    assert delay_until(now + timedelta(seconds=3), now) == 3
    assert delay_until(now - timedelta(seconds=5), now) == 0


def test_every_ladder_queue_holds_one_ttl_and_dead_letters_one_level_down() -> None:
    shape = topology.build(make_settings(), ["diag"])
    names = shape.names
    for k in range(topology.DELAY_LEVELS):
        [spec] = [q for q in shape.queues if q.name == names.delay_queue(k)]
        below = names.delay_exchange(k - 1) if k else names.delay_due
        assert spec.args["x-message-ttl"] == 2**k * 1000
        assert spec.args["x-dead-letter-exchange"] == below
        assert "x-dead-letter-routing-key" not in spec.args  # the key carries the rest


async def test_a_task_delayed_3s_runs_after_3s_and_before_4_5s(
    gateway: Client, start_consumer: StartConsumer, events: Events
) -> None:
    await start_consumer("diag")
    before = datetime.now(UTC)
    accepted = await submit(gateway, {**ECHO, "delay_seconds": 3})
    after = datetime.now(UTC)
    assert accepted["status"] == "scheduled"
    record = await get_task(gateway, accepted["id"])
    assert record["status"] == "scheduled" and record["due_at"] == accepted["due_at"]
    done = await get_task(gateway, accepted["id"], wait=10)
    assert done["status"] == "succeeded"
    started = datetime.fromisoformat(done["started_at"])
    assert started - before >= timedelta(seconds=3)
    assert started - after <= timedelta(seconds=4.5)


@pytest.mark.timeout(150)
async def test_a_task_run_at_70s_ahead_is_scheduled_then_runs_within_its_second(
    gateway: Client, start_consumer: StartConsumer
) -> None:
    await start_consumer("diag")
    run_at = (datetime.now(UTC) + timedelta(seconds=70)).replace(microsecond=0)
    accepted = await submit(gateway, {**ECHO, "run_at": run_at.isoformat()})
    assert accepted["status"] == "scheduled"
    await asyncio.sleep(60)
    waiting = await get_task(gateway, accepted["id"])
    assert waiting["status"] == "scheduled"
    assert datetime.fromisoformat(waiting["due_at"]) == run_at
    done = await get_task(gateway, accepted["id"], wait=30)
    assert done["status"] == "succeeded"
    started = datetime.fromisoformat(done["started_at"])
    assert run_at <= started < run_at + timedelta(seconds=1.25)  # the second it names, + hops


async def test_a_scheduled_task_cancelled_before_it_is_due_never_runs(
    gateway: Client, start_consumer: StartConsumer, events: Events
) -> None:
    await start_consumer("diag")
    accepted = await submit(gateway, {**ECHO, "delay_seconds": 2})
    response = await gateway.delete(f"/v1/tasks/{accepted['id']}")
    assert response.status == 202
    assert (await response.json())["status"] == "scheduled"
    record = await status_becomes(gateway, accepted["id"], "cancelled", timeout=10)
    assert record["reason"] == "cancel-requested"
    assert events.of(accepted["id"], "running") == []


@pytest.fixture
def settings() -> Settings:
    """Consumers forget a cancellation after 4 s, less than the delays of the tests here."""
    return make_settings(cancellation_retention_seconds=4.0)


async def test_a_cancel_is_remembered_until_a_task_due_past_the_retention_arrives(
    gateway: Client, start_consumer: StartConsumer, events: Events
) -> None:
    # Given a task due in 8 s, and consumers that remember a cancellation for 4 s
    await start_consumer("diag")
    accepted = await submit(gateway, {**ECHO, "delay_seconds": 8})
    # When it is cancelled at once (forgotten by t=4 s), and a consumer starts at 5 s
    assert (await gateway.delete(f"/v1/tasks/{accepted['id']}")).status == 202
    await asyncio.sleep(5)
    await start_consumer("diag")
    # Then the cancellation sent down the ladder (arriving at 6 s) still stops it at 8 s
    record = await status_becomes(gateway, accepted["id"], "cancelled", timeout=10)
    assert record["reason"] == "cancel-requested"
    assert events.of(accepted["id"], "running") == []


async def test_a_delay_beyond_the_ladder_or_two_ways_of_saying_when_is_a_422(
    gateway: Client, channel: AbstractChannel
) -> None:
    far = (datetime.now(UTC) + timedelta(days=60)).isoformat()
    for extra, where in (
        ({"delay_seconds": MAX_DELAY_SECONDS + 1}, "delay_seconds"),
        ({"run_at": far}, "run_at"),
        ({"delay_seconds": 1, "run_at": far}, "run_at"),
        ({"run_at": "tomorrow"}, "run_at"),
        ({"run_at": "2030-01-01T00:00:00"}, "run_at"),  # no offset: which zone?
        ({"delay_seconds": -1}, "delay_seconds"),
    ):
        response = await gateway.post("/v1/tasks", json={**ECHO, **extra})
        assert response.status == 422, extra
        problem = await response.json()
        assert problem["errors"][0]["loc"] == [where], (extra, problem)


async def test_a_run_at_in_the_past_runs_now(
    gateway: Client, start_consumer: StartConsumer
) -> None:
    await start_consumer("diag")
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    accepted = await submit(gateway, {**ECHO, "run_at": past})
    assert accepted["status"] == "queued" and "due_at" not in accepted
    assert (await get_task(gateway, accepted["id"], wait=10))["status"] == "succeeded"


async def test_a_batch_takes_delayed_tasks_beside_immediate_ones(
    gateway: Client, start_consumer: StartConsumer
) -> None:
    await start_consumer("diag")
    body = {
        "tasks": [
            {**ECHO, "delay_seconds": 2},
            ECHO,
            {**ECHO, "idempotency_key": "k", "delay_seconds": 2},
        ]
    }
    response = await gateway.post("/v1/tasks/batch", json=body)
    assert response.status == 200
    later, now, keyed = (await response.json())["items"]
    assert (later["status"], now["status"], keyed["status"]) == ("scheduled", "queued", "scheduled")
    assert (await get_task(gateway, now["id"], wait=10))["status"] == "succeeded"
    assert (await get_task(gateway, keyed["id"]))["status"] == "scheduled"
    for task in (later, keyed):
        done = await get_task(gateway, task["id"], wait=10)
        started = datetime.fromisoformat(done["started_at"])
        assert started >= datetime.fromisoformat(task["created_at"]) + timedelta(seconds=2)


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
async def test_the_ladder_delivers_in_due_order_on_both_queue_types(
    settings: Settings,
    channel: AbstractChannel,
    connection: AbstractRobustConnection,
    queue_type: str,
) -> None:
    # Given the ladder on quorum or classic queues, and tasks due in 3, 1 and 2 s
    shape = topology.build(settings.model_copy(update={"queue_type": queue_type}), ["diag"])
    publisher = await Publisher.open(connection, shape, 5.0)
    started = time.monotonic()
    for seconds in (3, 1, 2):
        await publish_delayed(publisher, _envelope(str(seconds)), seconds)
    # Then each reaches its work queue when due, the shortest first
    work = await channel.declare_queue(shape.names.work_queue("diag"), passive=True)
    arrived: list[tuple[bytes, float]] = []
    async with asyncio.timeout(10):
        while len(arrived) < 3:
            message = await work.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.02)
                continue
            arrived.append((message.body, time.monotonic() - started))
    assert [body for body, _ in arrived] == [b'"1"', b'"2"', b'"3"']
    for (_, after), due in zip(arrived, (1, 2, 3), strict=True):
        assert due <= after < due + 0.5


def _envelope(body: str) -> Envelope:
    return Envelope(
        id=new_task_id(),
        type="diag.echo",
        queue="diag",
        body=f'"{body}"'.encode(),
        attempt=1,
        max_attempts=1,
        timeout_seconds=5,
        created_at=datetime.now(UTC),
    )
