"""Least-privilege broker users (``warren topology permissions``), end to end on a private node.

In a vhost of its own, a deploy user applies the topology, then the gateway, a
consumer of ``diag`` and a scheduler run as users holding exactly the permissions their
role is given, with ``declare_topology`` off (passive declares need no permission). A
task is accepted and run, also after every connection was closed (aio-pika's
robust re-declaration is passive too); and what each user must not do is refused.
Users and vhost live on the private node only, and are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import quote

import aio_pika
import aiohttp
import pytest
from aiormq.exceptions import ChannelAccessRefused

from tests.faults.broker import RabbitNode
from tests.faults.harness import node_settings, warren_url
from tests.faults.procs import Spawner, gateway_url, wait_consumers, wait_http_ready
from warren.service.settings import Settings
from warren.service.topology import Names, Permissions, Role, permissions

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]
QUEUE_A, QUEUE_B = "diag", "email"


@dataclass(frozen=True)
class World:
    node: RabbitNode
    vhost: str
    names: Names
    urls: dict[str, str]  # user → AMQP URL into the vhost

    def settings(self, user: str, **overrides: object) -> Settings:
        return node_settings(
            self.node,
            namespace=self.names.namespace,
            broker_url=warren_url(self.urls[user]),
            declare_topology=False,
            **overrides,
        )


def add_user(node: RabbitNode, vhost: str, user: str, granted: Permissions) -> None:
    node.ctl("add_user", user, user)
    node.ctl("set_permissions", "-p", vhost, user, granted.configure, granted.write, granted.read)


@pytest.fixture
def world(node: RabbitNode) -> Iterator[World]:
    """A vhost and one user per role, with exactly the permissions the CLI prints."""
    if not node.running():
        node.start()
    tag = uuid.uuid4().hex[:8]
    vhost, names = f"perm-{tag}", Names(f"perm-{tag}")
    roles: dict[str, tuple[Role, list[str]]] = {
        f"deploy-{tag}": ("deploy", []),
        f"gateway-{tag}": ("gateway", []),
        f"consumer-a-{tag}": ("consumer", [QUEUE_A]),
        f"consumer-b-{tag}": ("consumer", [QUEUE_B]),
        f"scheduler-{tag}": ("scheduler", []),
    }
    node.ctl("add_vhost", vhost)
    try:
        for user, (role, queues) in roles.items():
            add_user(node, vhost, user, permissions(names, role, queues))
        base = f"amqp://{{0}}:{{0}}@127.0.0.1:{node.amqp_port}/{quote(vhost, safe='')}"
        urls: dict[str, str] = {}
        for user, (role, queues) in roles.items():
            urls["-".join([role, *queues])] = base.format(user)
        yield World(node, vhost, names, urls)
    finally:
        for user in roles:
            node.ctl("delete_user", user)
        node.ctl("delete_vhost", vhost)


@pytest.fixture
async def running(world: World, spawner: Spawner) -> AsyncIterator[str]:
    """The deploy user applies the topology; gateway and consumer A run as their users
    (the gateway's store: ``STORE`` in the spawner's directory)."""
    deploy = spawner.python(
        "-m",
        "warren",
        "topology",
        "apply",
        env=world.settings("deploy").child_environment(),
        name="deploy",
    )
    assert await asyncio.to_thread(deploy.popen.wait, 60) == 0, spawner.logs()
    gateway_settings = world.settings("gateway", store_url=store_url(spawner))
    gateway = spawner.gateway(gateway_settings)
    spawner.consumer(world.settings(f"consumer-{QUEUE_A}"), queue=QUEUE_A)
    await wait_http_ready(gateway_url(gateway_settings), gateway, 30)
    admin_url = world.urls["deploy"]
    await wait_consumers(admin_url, world.names.work_queue(QUEUE_A), 1, 30, spawner)
    yield gateway_url(gateway_settings)


def store_url(spawner: Spawner) -> str:
    return f"sqlite:///{spawner.log_dir}/t.db"


async def run_task(base_url: str) -> dict[str, object]:
    async with aiohttp.ClientSession() as http:
        body = {"type": "diag.echo", "payload": {"message": "least privilege"}}
        async with http.post(f"{base_url}/v1/tasks", json=body) as response:
            assert response.status == 202, await response.text()
            task_id = (await response.json())["id"]
        async with http.get(f"{base_url}/v1/tasks/{task_id}?wait=20") as response:
            record: dict[str, object] = await response.json()
    return record


async def test_least_privilege_users_run_the_pipeline_and_nothing_else(
    world: World, running: str, spawner: Spawner
) -> None:
    # Given the gateway and consumer A as least-privilege users, a task runs
    record = await run_task(running)
    assert record["status"] == "succeeded", (record, spawner.logs())

    # And still runs after every connection dropped (passive robust re-declaration)
    world.node.close_all_connections("permissions test")
    await wait_consumers(world.urls["deploy"], world.names.work_queue(QUEUE_A), 1, 30, spawner)
    for _ in range(60):
        try:
            record = await run_task(running)
            break
        except AssertionError:  # 503 while the gateway reconnects
            await asyncio.sleep(0.5)
    assert record["status"] == "succeeded", (record, spawner.logs())

    # Then consumer A's user cannot consume queue B, nor publish tasks, nor delete its queue
    names = world.names
    consumer_a = world.urls[f"consumer-{QUEUE_A}"]
    await refused(consumer_a, lambda ch: consume(ch, names.work_queue(QUEUE_B)))
    await refused(consumer_a, lambda ch: publish(ch, names.work_exchange, QUEUE_A))
    await refused(consumer_a, lambda ch: ch.queue_delete(names.work_queue(QUEUE_A)))
    # And the gateway's user cannot consume a work queue (its dead letters, it keeps)
    gateway = world.urls["gateway"]
    await refused(gateway, lambda ch: consume(ch, names.work_queue(QUEUE_A)))
    # While what each may do is allowed (the refusals above are about permissions)
    await allowed(consumer_a, lambda ch: consume(ch, names.work_queue(QUEUE_A)))
    await allowed(gateway, lambda ch: publish(ch, names.work_exchange, QUEUE_B))


async def test_a_scheduler_fires_its_ticks_as_a_least_privilege_user(
    world: World, running: str, spawner: Spawner
) -> None:
    # Given a scheduler of an every-5-seconds schedule, as the scheduler role's user
    settings = world.settings("scheduler", app="tests.schedule_app", store_url=store_url(spawner))
    env = settings.child_environment()
    spawner.python("-m", "warren", "scheduler", env=env, name="scheduler")
    # When a tick comes, Then its task is published, run and recorded
    async with aiohttp.ClientSession() as http:
        for _ in range(60):
            async with http.get(f"{running}/v1/tasks?type=diag.echo&status=succeeded") as got:
                items = (await got.json())["items"]
            if items:
                break
            await asyncio.sleep(0.5)
    assert items and items[0]["submitter"] == "schedule:every5", spawner.logs()
    # And the scheduler's user can neither consume a work queue nor settle like a consumer
    scheduler = world.urls["scheduler"]
    names = world.names
    await refused(scheduler, lambda ch: consume(ch, names.work_queue(QUEUE_A)))
    await refused(scheduler, lambda ch: publish(ch, names.retry_exchange, QUEUE_A))
    await refused(scheduler, lambda ch: publish(ch, names.events_exchange, "x"))
    # nor publish straight into a queue through the default exchange
    await refused(scheduler, lambda ch: publish(ch, "", names.work_queue(QUEUE_A)))


async def consume(channel: aio_pika.abc.AbstractChannel, queue: str) -> None:
    async def ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await message.nack(requeue=True)

    declared = await channel.declare_queue(queue, passive=True)  # passive: allowed to all
    tag = await declared.consume(ignore)
    await declared.cancel(tag)


async def publish(channel: aio_pika.abc.AbstractChannel, exchange: str, key: str) -> None:
    target = await channel.get_exchange(exchange, ensure=False)
    await target.publish(aio_pika.Message(b"{}"), key)


async def refused(url: str, action: object) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        with pytest.raises(ChannelAccessRefused, match="ACCESS_REFUSED"):
            await action(channel)  # type: ignore[operator]


async def allowed(url: str, action: object) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        await action(await connection.channel())  # type: ignore[operator]
