"""Cron schedules: ticks, one leader among scheduler replicas, each tick fired exactly once."""

from __future__ import annotations

import asyncio
import itertools
import signal
import socket
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import Spawn, StartConsumer, make_settings
from tests.store.support import Client, eventually, status_becomes
from tests.support import message_count
from tests.test_auth import bearer, keyed_settings
from warren.service import topology
from warren.service.amqp import Publisher
from warren.service.apps import App, load_app
from warren.service.errors import ConfigurationError
from warren.service.http.app import create_app
from warren.service.http.schemas import SchedulePage
from warren.service.scheduler import Scheduler, tick_claim
from warren.service.schedules import Schedule
from warren.service.settings import Settings
from warren.service.store import open_store
from warren.service.store.model import Status
from warren.service.wire import task_change

APP = "tests.schedule_app"


@pytest.fixture
def settings() -> Settings:
    return make_settings(app=APP)


def test_cron_ticks_follow_the_time_zone_through_dst() -> None:
    nightly = Schedule(
        "n", "diag.echo", {"message": "x"}, cron="30 2 * * *", timezone="Europe/Paris"
    )
    # 2026-03-29: Paris springs forward at 02:00 to 03:00; 02:30 does not exist that day.
    ticks = list(
        nightly.ticks(datetime(2026, 3, 28, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC))
    )
    assert [t.isoformat() for t in ticks] == [
        "2026-03-28T01:30:00+00:00",  # 02:30 CET
        "2026-03-29T01:00:00+00:00",  # 03:00 CEST, the first minute after the gap
        "2026-03-30T00:30:00+00:00",  # 02:30 CEST
    ]
    assert nightly.previous(ticks[1]) == ticks[1]
    assert nightly.next_after(ticks[1]) == ticks[2]


def test_interval_ticks_are_aligned_so_every_replica_agrees() -> None:
    every = Schedule("e", "diag.echo", {"message": "x"}, every=5)
    at = datetime(2026, 1, 1, 0, 0, 7, tzinfo=UTC)
    assert every.previous(at) == datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)
    assert every.next_after(at) == datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC)
    assert every.task_id("ns", every.previous(at)) == every.task_id("ns", every.previous(at))
    assert every.task_id("ns", at) != every.task_id("other", at)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * * * *", "every": 5}, "one of them"),
        ({}, "one of them"),
        ({"every": 5, "timezone": "Mars/Olympus"}, "time zone"),
        ({"every": 0.5}, "at least 1 second"),
    ],
)
def test_a_bad_schedule_fails_at_import(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Schedule("s", "diag.echo", {"message": "x"}, **kwargs)  # type: ignore[arg-type]


def test_an_app_refuses_a_schedule_of_an_unknown_type_or_a_bad_payload() -> None:
    with pytest.raises(ConfigurationError, match="unknown task type"):
        App(schedules=[Schedule("s", "nope.task", {}, every=5)])
    with pytest.raises(ConfigurationError, match="payload"):
        App(schedules=[Schedule("s", "diag.echo", {"wrong": 1}, every=5)])
    with pytest.raises(ConfigurationError, match="twice"):
        App(schedules=[Schedule("s", "diag.echo", {"message": "x"}, every=5)] * 2)


async def test_schedules_list_their_last_and_next_tick(
    gateway: Client, settings: Settings, spawn: Spawn
) -> None:
    scheduler = Scheduler(settings, load_app(APP))
    await scheduler.start()
    try:
        await eventually(lambda: _true(scheduler.fired >= 1), timeout=15)
    finally:
        await scheduler.stop()
    response = await gateway.get("/v1/schedules")
    assert response.status == 200
    body = await response.json()
    SchedulePage.model_validate(body)  # as the OpenAPI document says
    every5, nightly = body["items"]
    assert every5["id"] == "every5" and every5["last_status"] == "queued"
    last = datetime.fromisoformat(every5["last_tick"])
    assert datetime.fromisoformat(every5["next_tick"]) - last >= timedelta(seconds=5)
    assert nightly["last_tick"] is None and nightly["timezone"] == "Europe/Paris"
    shown = spawn("schedules")  # `warren schedules`: the same, from the store
    assert await shown.exit_code(within=15) == 0
    assert f"every5  diag.echo  every 5s UTC  last {every5['last_tick']} (queued)" in shown.log()


async def _true(value: bool) -> bool:
    return value


@pytest.mark.timeout(240)
async def test_two_schedulers_fire_each_tick_exactly_once_also_when_the_leader_is_killed(
    spawn: Spawn, channel: AbstractChannel, settings: Settings
) -> None:
    # Given two scheduler processes on an every-5-seconds schedule
    first = spawn("scheduler")
    await first.wait_log("scheduler leading")
    second = spawn("scheduler")
    await second.wait_log("scheduler following")
    started = datetime.now(UTC)
    # When the leader is killed with SIGKILL after a minute, and a replacement starts
    await asyncio.sleep(60)
    first.send(signal.SIGKILL)
    await second.wait_log("scheduler leading", within=15)
    third = spawn("scheduler")
    await third.wait_log("scheduler following")
    await asyncio.sleep(60)
    for child in (second, third):
        child.send(signal.SIGTERM)
        assert await child.exit_code(within=15) == 0
    ended = datetime.now(UTC)
    # Then every tick of those two minutes is in the work queue exactly once
    ticks = await _fired_ticks(channel, settings, "diag")
    assert len(ticks) == len(set(ticks)), "a tick fired twice"
    expected = int((ended - started).total_seconds() // 5) - 1
    assert len(ticks) >= expected >= 22
    assert all(b - a == timedelta(seconds=5) for a, b in itertools.pairwise(ticks))
    assert ticks[0] <= started + timedelta(seconds=5) and ticks[-1] >= ended - timedelta(seconds=6)


async def _fired_ticks(channel: AbstractChannel, settings: Settings, queue: str) -> list[datetime]:
    """The ``warren-created-at`` (the tick) of every task waiting in ``queue``, in order."""
    names = topology.Names(settings.namespace)
    work = await channel.declare_queue(names.work_queue(queue), passive=True)
    ticks: list[datetime] = []
    while (message := await work.get(no_ack=True, fail=False)) is not None:
        headers = message.headers or {}
        ticks.append(datetime.fromisoformat(str(headers["warren-created-at"])))
    return sorted(ticks)


YEARLY = Schedule("yearly", "diag.echo", {"message": "new year"}, cron="0 0 1 1 *")


async def test_a_tick_claimed_by_a_leader_that_died_is_never_fired_again(
    gateway: Client,
    settings: Settings,
    connection: AbstractRobustConnection,
    channel: AbstractChannel,
    shape: topology.Topology,
    start_consumer: StartConsumer,
) -> None:
    # Given a leader that claimed two ticks and died: after the confirmed publish of the
    # first (before its store write), and before any publish of the second
    scheduler = Scheduler(settings, App(schedules=[YEARLY]))  # no tick due while it runs
    published, unsent = datetime(2026, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)
    store = await open_store(settings.store_url)
    dead_leader = await Publisher.open(connection, shape, 5.0)
    await scheduler.start()
    try:
        long_ago = datetime.now(UTC) - timedelta(minutes=5)
        for tick in (published, unsent):
            change = task_change(scheduler.tick_envelope(YEARLY, tick), Status.QUEUED, at=tick)
            claim = replace(tick_claim(change, YEARLY.key(tick)), updated_at=long_ago)
            assert await store.claim(claim) is None
        await dead_leader.publish_task(scheduler.tick_envelope(YEARLY, published))
        # When the new leader comes to both ticks
        refired = [await scheduler.fire(YEARLY, tick) for tick in (published, unsent)]
    finally:
        await scheduler.stop()
        await store.close()
    # Then it publishes neither: the published tick's task is in its queue once
    assert refired == [False, False] and scheduler.fired == 0
    work = topology.Names(settings.namespace).work_queue("diag")
    assert await message_count(channel, work) == 1
    # And that one task runs once and makes one record, visible once the consumer ran it
    await start_consumer("diag")
    task_id = YEARLY.task_id(settings.namespace, published)
    record = await status_becomes(gateway, task_id, "succeeded")
    assert len(record["attempts"]) == 1 and record["submitter"] == YEARLY.owner
    # While the tick whose publish was never sent is lost: no task, no record
    missing = await gateway.get(f"/v1/tasks/{YEARLY.task_id(settings.namespace, unsent)}")
    assert missing.status == 404


async def test_a_scheduler_with_a_health_port_answers_the_probes(spawn: Spawn) -> None:
    with socket.socket() as probe:  # a free port, as an orchestrator would give one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    replica = spawn("scheduler", "--health-port", str(port), http_host="127.0.0.1")
    await replica.wait_log("scheduler following")
    async with aiohttp.ClientSession() as http:
        for path in ("/healthz", "/readyz", "/metrics"):
            async with http.get(f"http://127.0.0.1:{port}{path}") as response:
                assert response.status == 200, path
    replica.send(signal.SIGTERM)
    assert await replica.exit_code(within=15) == 0


async def test_a_schedules_tasks_belong_to_its_submitter_key_or_to_the_schedule(
    settings: Settings, channel: AbstractChannel
) -> None:
    # Given ticks fired of a schedule owned by the key "reader" and of one owning its tasks
    app_spec = "tests.schedule_app:owned_app"
    scheduler = Scheduler(
        make_settings(**{**_same_store(settings), "app": app_spec}), load_app(app_spec)
    )
    tick = scheduler.schedules[0].previous(datetime.now(UTC))  # both are hourly
    await scheduler.start()
    try:
        for schedule in scheduler.schedules:
            assert await scheduler.fire(schedule, tick)
    finally:
        await scheduler.stop()
    owned, unowned = (s.task_id(settings.namespace, tick) for s in scheduler.schedules)
    keyed = keyed_settings(settings, app=app_spec)
    async with TestClient(TestServer(create_app(keyed))) as gateway:
        # When the reader key reads tasks and schedules
        mine = await gateway.get(f"/v1/tasks/{owned}", headers=bearer("reader"))
        record = await mine.json()
        theirs = await gateway.get(f"/v1/tasks/{unowned}", headers=bearer("reader"))
        listed = await (await gateway.get("/v1/tasks", headers=bearer("reader"))).json()
        seen = await (await gateway.get("/v1/schedules", headers=bearer("reader"))).json()
        admin = await (await gateway.get("/v1/schedules", headers=bearer("ops"))).json()
    # Then it sees its own schedule's task, and nothing of the other's but the schedule itself
    assert mine.status == 200 and record["submitter"] == "reader"
    assert theirs.status == 404
    assert [item["id"] for item in listed["items"]] == [owned]
    by_id = {s["id"]: s for s in seen["items"]}
    assert by_id["owned"]["submitter"] == "reader" and by_id["owned"]["last_task_id"] == owned
    assert by_id["unowned"]["submitter"] == "schedule:unowned"
    assert by_id["unowned"]["last_task_id"] is None and by_id["unowned"]["last_status"] is None
    assert {s["last_task_id"] for s in admin["items"]} == {owned, unowned}  # admin sees all


def _same_store(settings: Settings) -> dict[str, object]:
    return {"namespace": settings.namespace, "store_url": settings.store_url}
