"""Scenario 10: a 3-node cluster with quorum queues loses a node mid-load.

Three private nodes form a cluster (the second and third join the first at
boot). Warren runs with ``WARREN_QUEUE_TYPE=quorum``; its topology is declared
through node B, so B leads the work queue (and the ledger's queue), while the
gateway is connected to A and the consumers to C. B is then killed (kill -9):
the queue's leader is gone mid-load, a new one is elected among A and C, and
the service must carry on — submissions accepted, tasks run — with nothing
accepted lost. Submissions whose confirm was held up by the election may get
a ``503`` (and run anyway: *recovered*).

Why clients are not connected to B: Warren takes one broker URL, and a robust
connection reconnects only to it; surviving the loss of the node a client is
connected to takes a load balancer in front of the cluster (see
the README's "Guarantees").
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.faults.broker import RabbitNode, start_all
from tests.faults.harness import Harness, node_settings, warren_url
from tests.faults.ledger import EventTap, Told
from tests.faults.load import declare_topology, patience, scaled
from tests.faults.procs import Spawner, until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

CONSUMERS = 2
PREFETCH = 8


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[RabbitNode, RabbitNode, RabbitNode]]:
    """Three clustered nodes (about 20 s to form); all stopped by name at the end."""
    a = RabbitNode.create("warren-faults-a")
    b = RabbitNode.create("warren-faults-b", seed=a)
    c = RabbitNode.create("warren-faults-c", seed=a)
    try:
        a.start()
        start_all([b, c])
        assert a.running_nodes() == sorted(n.name for n in (a, b, c))
        yield a, b, c
    finally:
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(RabbitNode.destroy, (c, b, a)))


async def test_killing_the_quorum_leader_node_mid_load_loses_nothing(
    cluster: tuple[RabbitNode, RabbitNode, RabbitNode], spawner: Spawner
) -> None:
    a, b, c = cluster
    store = {"store_url": f"sqlite:///{spawner.log_dir / 'tasks.db'}"}
    on_a = node_settings(a, queue_type="quorum", **store)
    on_b = on_a.model_copy(update={"broker_url": warren_url(b.url)})
    on_c = on_a.model_copy(update={"broker_url": warren_url(c.url)})
    # Declared through B: B leads the quorum queues (client-local leader placement).
    await declare_topology(on_b)
    tap = EventTap(b.url, Harness.names_of(on_a), "quorum")
    await tap.declare()
    tap.url = a.url  # read through a node that stays up
    h = Harness("cluster-leader-killed", a, spawner, on_a, tap)
    await h.start_gateway()
    for _ in range(CONSUMERS):
        h.consumers.append(spawner.consumer(on_c, PREFETCH))
    await h.consumers_attached(CONSUMERS)

    assert await asyncio.to_thread(a.queue_leader, h.work_queue) == b.name

    loop = asyncio.get_running_loop()
    load = h.load(pause_between=0.005)
    submitting = asyncio.create_task(load.run())
    try:
        await until(lambda: len(h.ledger.told(Told.ACCEPTED)) >= scaled(150), patience(30), "load")
        await asyncio.to_thread(b.kill9)
        killed_at = loop.time()
        # The service continues: tasks are accepted after the leader's node is gone.
        await until(
            lambda: (
                sum(
                    1
                    for a in h.ledger.answers.values()
                    if a.told is Told.ACCEPTED and a.sent_at > killed_at + 1
                )
                >= scaled(100)
            ),
            patience(30),
            "submissions accepted after the kill",
            explain=h.explain,
        )
    finally:
        load.stop.set()
        await submitting

    await h.consumers_attached(CONSUMERS)
    assert await asyncio.to_thread(a.queue_leader, h.work_queue) in (a.name, c.name)
    verdict = await h.outcomes(within=60)
    verdict.check(max_extra_runs=CONSUMERS * PREFETCH)
