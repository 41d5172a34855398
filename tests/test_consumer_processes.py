"""Consumers as real processes: SIGTERM, kill -9 and ``warren dev``, on the real broker.

Why processes and not in-process ``Consumer`` objects: what is promised here
lives in signal handling, process exit and the broker's requeue of a dead
connection's unacked deliveries. A SIGTERM drains in-flight tasks and exits 0;
work cut off by the grace or by kill -9 comes back from the broker, so no task
is ever lost (at most duplicated); ``warren dev`` starts and stops its children
as one. Each child builds its settings from ``WARREN_*`` variables derived
from the test's ``settings`` fixture, so it shares the test's namespace.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections import Counter
from typing import Any

import aiohttp
import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from tests.conftest import Spawn, StartConsumer
from tests.processes import Child, free_port, ready, settings_env, until
from tests.support import Events, drain, first_attempt, message_count
from warren.consumers.inbound import Delivery
from warren.service.settings import Settings
from warren.service.topology import Declared, Names

pytestmark = pytest.mark.slow


def consumer(spawn: Spawn, queue: str = "diag", concurrency: int = 4, **overrides: Any) -> Child:
    return spawn("consume", "--queue", queue, "--concurrency", str(concurrency), **overrides)


async def publish(
    connection: AbstractRobustConnection,
    settings: Settings,
    payloads: list[dict[str, Any]],
    type_: str = "diag.sleep",
    queue: str = "diag",
) -> list[str]:
    """Publish first attempts straight to the work exchange (confirmed); their task ids."""
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    try:
        exchange = await channel.get_exchange(Names(settings.namespace).work_exchange)
        ids: list[str] = []
        for payload in payloads:
            envelope = first_attempt(type_, payload, queue)
            await exchange.publish(envelope.to_message(), routing_key=queue, mandatory=True)
            ids.append(envelope.id)
        return ids
    finally:
        await channel.close()


def task_ids(events: Events, status: str, worker: str | None = None) -> set[str]:
    return {
        e["task_id"]
        for e in events.items
        if e["status"] == status and worker in (None, e["worker"])
    }


def count(events: Events, status: str) -> Counter[str]:
    return Counter(e["task_id"] for e in events.items if e["status"] == status)


async def test_sigterm_lets_in_flight_tasks_finish_and_loses_none(
    spawn: Spawn,
    connection: AbstractRobustConnection,
    channel: AbstractChannel,
    settings: Settings,
    events: Events,
) -> None:
    ids = await publish(connection, settings, [{"ms": 2000}] * 8)
    first = consumer(spawn, concurrency=4, consumer_grace_seconds=3.0)
    await events.wait_for(lambda _: len(task_ids(events, "running")) >= 4)
    in_flight = task_ids(events, "running")
    assert len(in_flight) == 4  # 4 handler slots: the other four wait, unstarted

    first.send(signal.SIGTERM)
    assert await first.exit_code(within=3.0 + 4) == 0, first.log()

    # Every in-flight task ran to its end in the stopping process: none was cut off.
    await events.wait_for(lambda _: in_flight <= task_ids(events, "succeeded"), timeout=5)
    assert task_ids(events, "succeeded") == task_ids(events, "succeeded", first.worker)
    assert task_ids(events, "succeeded") == in_flight
    # Every task is accounted for: finished, or still waiting in the work queue.
    waiting = await message_count(channel, work(settings))
    assert len(task_ids(events, "succeeded")) + waiting == 8
    assert waiting == 4

    second = consumer(spawn, concurrency=4)
    await events.wait_for(lambda _: task_ids(events, "succeeded") == set(ids), timeout=20)
    second.send(signal.SIGTERM)
    assert await second.exit_code(within=8) == 0, second.log()
    # Acked before the exit, so nothing ran twice; and nothing failed.
    assert count(events, "succeeded") == dict.fromkeys(ids, 1)
    assert count(events, "running") == dict.fromkeys(ids, 1)
    assert {e["status"] for e in events.items} == {"running", "succeeded"}


async def test_sigterm_past_the_grace_requeues_the_cut_off_tasks(
    spawn: Spawn,
    connection: AbstractRobustConnection,
    settings: Settings,
    declared: Declared,
    events: Events,
) -> None:
    ids = await publish(connection, settings, [{"ms": 10_000}] * 4)
    proc = consumer(spawn, concurrency=4, consumer_grace_seconds=1.0)
    await events.wait_for(lambda _: task_ids(events, "running") == set(ids))

    loop = asyncio.get_running_loop()
    signalled = loop.time()
    proc.send(signal.SIGTERM)
    assert await proc.exit_code(within=1.0 + 6) == 0, proc.log()
    assert loop.time() - signalled < 1.0 + 3, proc.log()  # not the 10 s the tasks wanted

    # No outcome was reported for them: they were handed back, not failed or finished.
    assert {e["status"] for e in events.items} == {"running"}
    back = await drain(declared.queues[work(settings)], 4, timeout=5)
    assert sorted(m.message_id or "" for m in back) == sorted(ids)
    assert all(m.redelivered for m in back)


async def test_kill_9_with_tasks_in_flight_loses_none(
    spawn: Spawn,
    connection: AbstractRobustConnection,
    settings: Settings,
    events: Events,
) -> None:
    ids = await publish(connection, settings, [{"ms": 2000}] * 8)
    victim = consumer(spawn, concurrency=4)
    await events.wait_for(lambda _: len(task_ids(events, "running")) >= 4)
    os.kill(victim.pid, signal.SIGKILL)
    assert await victim.exit_code(within=5) == -signal.SIGKILL
    cut_off = task_ids(events, "running", victim.worker)
    assert len(cut_off) == 4
    assert not task_ids(events, "succeeded", victim.worker)  # killed mid-sleep

    survivor = consumer(spawn, concurrency=4)
    await events.wait_for(lambda _: task_ids(events, "succeeded") == set(ids), timeout=25)
    survivor.send(signal.SIGTERM)
    assert await survivor.exit_code(within=8) == 0, survivor.log()

    # The broker requeued the dead connection's unacked deliveries and they ran again,
    # in the new process: at most one duplicate run per delivery the victim had prefetched.
    duplicated = {task for task, runs in count(events, "running").items() if runs > 1}
    assert 1 <= len(duplicated) <= 4
    assert duplicated == cut_off
    assert cut_off <= task_ids(events, "succeeded", survivor.worker)
    assert all(n >= 1 for n in count(events, "succeeded").values())


async def test_dev_serves_runs_a_task_and_stops_with_all_its_children(
    spawn: Spawn, settings: Settings, events: Events
) -> None:
    port = free_port()
    dev = spawn("dev", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        await ready(http, f"{base}/readyz", dev, within=20)
        await dev.wait_log("consuming ", count=4)  # diag, email, media, webhooks
        response = await http.post(
            f"{base}/v1/tasks", json={"type": "diag.echo", "payload": {"message": "dev"}}
        )
        assert response.status == 202, await response.text()
        accepted = await response.json()
    assert len(accepted["id"]) == 32 and len(accepted["trace_id"]) == 32
    final = await events.final(accepted["id"])
    assert final["status"] == "succeeded" and final["result"] == {"message": "dev"}
    assert final["trace_id"] == accepted["trace_id"]

    dev.send(signal.SIGTERM)
    assert await dev.exit_code(within=15) == 0, dev.log()
    await no_group_left(dev, within=5)
    assert dev.log().count("consumer of ") == 4  # each consumer drained and said so
    assert "gateway stopped" in dev.log()
    assert dev.log().count("collector settled") == 5  # the gateway and each consumer process


async def test_dev_stops_everything_and_fails_when_a_child_fails(
    spawn: Spawn, settings: Settings
) -> None:
    # Every task timeout cap is above this, so every consumer refuses to start.
    dev = spawn("dev", "--port", str(free_port()), broker_consumer_timeout_seconds=100.0)
    assert await dev.exit_code(within=30) == 1, dev.log()
    await no_group_left(dev, within=5)
    assert "stopping the others" in dev.log()


@pytest.mark.parametrize("command", ["consume", "gateway"])
async def test_sigterm_during_start_up_exits_cleanly_at_once(spawn: Spawn, command: str) -> None:
    nobody = f"amqp://guest:guest@127.0.0.1:{free_port()}/"  # it keeps retrying to connect
    args = ["--queue", "diag"] if command == "consume" else ["--port", str(free_port())]
    proc = spawn(command, *args, broker_url=nobody, connect_timeout_seconds=30.0)
    await proc.wait_log("no broker yet")

    proc.send(signal.SIGTERM)
    assert await proc.exit_code(within=3) == 0, proc.log()
    assert "Traceback" not in proc.log()


async def test_a_blocked_sync_handler_does_not_hold_the_exit_past_the_grace(
    spawn: Spawn,
    connection: AbstractRobustConnection,
    settings: Settings,
    declared: Declared,
    events: Events,
) -> None:
    # Connections to a listening socket nobody accepts from complete (in the kernel's
    # backlog) and then hear nothing: email.send, a sync handler, waits 30 s for a greeting.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        mail = {"to": ["a@example.com"], "subject": "hi", "text": "hello"}
        [task] = await publish(connection, settings, [mail], "email.send", "email")
        proc = consumer(
            spawn,
            "email",
            2,
            consumer_grace_seconds=1.0,
            DEMO_SMTP_PORT=port,
            DEMO_SMTP_TIMEOUT_SECONDS=30.0,
        )
        await events.wait_for(lambda _: task in task_ids(events, "running"))

        proc.send(signal.SIGTERM)
        assert await proc.exit_code(within=1.0 + 4) == 0, proc.log()
        assert "sync handlers still running after the grace" in proc.log()
    [back] = await drain(declared.queues[work(settings, "email")], 1, timeout=5)
    assert back.message_id == task and back.redelivered


async def test_a_delivery_arriving_while_stopping_is_given_back_unstarted(
    start_consumer: StartConsumer,
    connection: AbstractRobustConnection,
    settings: Settings,
    declared: Declared,
    events: Events,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In process: the broker may dispatch until it has processed our basic.cancel."""
    consumer = await start_consumer("diag", concurrency=4)
    given_back: list[str] = []

    async def give_back(delivery: Delivery) -> None:
        given_back.append(delivery.message_id or "")
        await runner_give_back(delivery)

    async def late_delivery_then_cancel() -> None:
        # stop() has begun, and the consumer is not cancelled yet: a task arrives now.
        late.extend(await publish(connection, settings, [{"message": "late"}], "diag.echo"))
        await until(lambda: bool(given_back), 5, "the late delivery")
        await cancel()

    late: list[str] = []
    runner_give_back, cancel = consumer._give_back, consumer._cancel_consumer
    monkeypatch.setattr(consumer, "_give_back", give_back)
    monkeypatch.setattr(consumer, "_cancel_consumer", late_delivery_then_cancel)
    await consumer.stop(grace=1)

    assert set(given_back) == set(late)
    assert events.items == []  # never started: no running event
    [back] = await drain(declared.queues[work(settings)], 1, timeout=5)
    assert back.message_id == late[0] and back.redelivered


def test_settings_env_round_trips(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "environ", settings_env(settings, consumer_grace_seconds=2.5))
    assert Settings() == settings.model_copy(update={"consumer_grace_seconds": 2.5})


# --- helpers of the tests above ----------------------------------------------------------


def work(settings: Settings, queue: str = "diag") -> str:
    return Names(settings.namespace).work_queue(queue)


async def no_group_left(proc: Child, within: float) -> None:
    """Neither the process nor anything it started is still running."""
    await until(lambda: not proc.group_alive(), within, f"every process of {proc.pid}", proc)
