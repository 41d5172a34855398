"""Scenario 5: connections fail while the broker stays up.

Three faults in one run, under continuous load, each followed by proof of
recovery before the next: the broker closes every client connection
(``rabbitmqctl close_all_connections``, as an operator or a node under
pressure does); the network drops every connection for a second (a TCP proxy
between Warren's processes and the node is cut and restored); and the network
becomes slow (the proxy delays every chunk). The gateway and the consumers
must reconnect by themselves, consumers must re-attach to their queue, and
nothing accepted may be lost. Each fault may redeliver what was in flight:
at most the consumers' prefetch windows per fault.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.faults.broker import RabbitNode
from tests.faults.conftest import MakeHarness
from tests.faults.harness import Harness, warren_url
from tests.faults.ledger import Told
from tests.faults.load import HttpLoad, patience, scaled
from tests.faults.procs import until
from tests.support import TcpProxy

pytestmark = pytest.mark.faults

CONSUMERS = 2
PREFETCH = 8
FAULTS = 3  # close_all_connections, a cut, a latency episode


@pytest.fixture
async def proxy(node: RabbitNode) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy("127.0.0.1", node.amqp_port)
    await proxy.start()
    yield proxy
    await proxy.cut()


async def accepted_again(h: Harness, after: float, what: str) -> None:
    """Until a submission sent after ``after`` got a 202: the gateway has recovered."""
    await until(
        lambda: any(
            a.told is Told.ACCEPTED and a.sent_at > after for a in h.ledger.answers.values()
        ),
        30,
        what,
        explain=h.explain,
    )


async def test_closed_dropped_and_slow_connections_are_survived_without_loss(
    harness: MakeHarness, node: RabbitNode, proxy: TcpProxy
) -> None:
    # Warren's processes go through the proxy; the test's own checks ask the node directly.
    h = await harness(broker_url=warren_url(f"amqp://guest:guest@127.0.0.1:{proxy.port}/"))
    await h.start_gateway()
    await h.start_consumers(CONSUMERS, PREFETCH)
    loop = asyncio.get_running_loop()
    load: HttpLoad = h.load(pause_between=0.01)
    submitting = asyncio.create_task(load.run())
    try:
        await until(lambda: len(h.ledger.answers) >= scaled(100), patience(30), "load")

        await asyncio.to_thread(node.close_all_connections, "scenario 5")
        await accepted_again(h, loop.time(), "recovery from close_all_connections")
        await h.consumers_attached(CONSUMERS)

        await proxy.cut()
        await asyncio.sleep(1.0)
        await proxy.restore()
        await accepted_again(h, loop.time(), "recovery from a network cut")
        await h.consumers_attached(CONSUMERS)

        proxy.latency = 0.05
        slow_from = loop.time()
        await asyncio.sleep(2.0)
        proxy.latency = 0.0
        slow = [a for a in h.ledger.answers.values() if a.sent_at > slow_from]
        assert any(a.told is Told.ACCEPTED for a in slow), "nothing accepted on a slow network"
    finally:
        load.stop.set()
        await submitting

    await h.consumers_attached(CONSUMERS)
    verdict = await h.outcomes(within=60)
    await h.drained()
    verdict.check(max_extra_runs=FAULTS * CONSUMERS * PREFETCH)
