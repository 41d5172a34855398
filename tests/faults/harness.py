"""What every fault scenario needs: settings on the private node, processes, the ledger.

A ``Harness`` is one scenario's world: its own namespace on a private node, the
gateway and consumer processes it started, and the ledger with its event tap.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.conftest import make_settings
from tests.faults.broker import RabbitNode
from tests.faults.ledger import EventTap, Ledger, Verdict
from tests.faults.load import HttpLoad, patience
from tests.faults.oracle import ApiVerdict, api_converged
from tests.faults.procs import (
    Proc,
    Spawner,
    free_port,
    gateway_url,
    wait_consumers,
    wait_drained,
    wait_http_ready,
)
from warren.service.settings import Settings
from warren.service.topology import Names

T = TypeVar("T")
API_WITHIN = 30.0  # seconds for the task API to agree with the broker's events


def warren_url(url: str) -> str:
    """The broker URL Warren's processes get: reconnect 1 s after a loss, not aio-pika's 5 s.

    The suite then spends its time on faults rather than on waiting; what is
    promised does not depend on the interval (it only shortens the 503s).
    """
    return f"{url}?reconnect_interval=1"


def node_settings(node: RabbitNode, **overrides: Any) -> Settings:
    """Test settings (short tiers and timeouts) on ``node``, in a namespace of their own.

    Consumers serve no health port (several run side by side), and start-up
    keeps retrying the broker for 30 s, long enough to ride out a node restart.
    The publish timeout is the production default (the unit tests' 2 s would
    let a machine busy with other work time out confirms, and the requeue that
    follows would add duplicates no fault caused).
    """
    values: dict[str, Any] = {
        "broker_url": warren_url(node.url),
        "namespace": f"faults-{uuid.uuid4().hex[:8]}",
        "publish_timeout_seconds": 5.0,
        "connect_timeout_seconds": 30.0,
        "consumer_grace_seconds": 2.0,
        "http_port": free_port(),
        "log_format": "text",
        "health_port": 0,
    }
    values.update(overrides)
    known = {k: v for k, v in values.items() if k in Settings.model_fields}
    return make_settings(**known)


@dataclass
class Harness:
    """One scenario: its settings, the processes it started, and its ledger.

    The node is always asked directly (``node.url``) for counts and events, even
    when Warren's processes reach it through a proxy, so a fault on their path
    never blinds the judge.
    """

    scenario: str
    node: RabbitNode
    spawner: Spawner
    settings: Settings
    tap: EventTap
    ledger: Ledger = field(init=False)
    gateway: Proc | None = None
    consumers: list[Proc] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ledger = Ledger(self.scenario)

    @property
    def names(self) -> Names:
        return self.names_of(self.settings)

    @staticmethod
    def names_of(settings: Settings) -> Names:
        return Names(settings.namespace)

    @property
    def work_queue(self) -> str:
        return self.names.work_queue("diag")

    @property
    def base_url(self) -> str:
        return gateway_url(self.settings)

    def explain(self) -> str:
        return f"{self.spawner.logs()}\n--- node log ---\n{self.node.log_tail()}"

    async def start_gateway(self, within: float = 30) -> Proc:
        self.gateway = self.spawner.gateway(self.settings)
        await wait_http_ready(self.base_url, self.gateway, within)
        return self.gateway

    def spawn_consumer(self, concurrency: int) -> Proc:
        proc = self.spawner.consumer(self.settings, concurrency)
        self.consumers.append(proc)
        return proc

    async def start_consumers(self, count: int, concurrency: int, within: float = 30) -> None:
        for _ in range(count):
            self.spawn_consumer(concurrency)
        await self.consumers_attached(sum(1 for c in self.consumers if c.alive()), within=within)

    async def consumers_attached(self, count: int, within: float = 30) -> None:
        await wait_consumers(self.node.url, self.work_queue, count, within, self.spawner)

    async def drained(self, within: float = 30) -> None:
        await wait_drained(self.node.url, self.work_queue, patience(within), self.spawner)

    def load(self, prefix: str = "t", **options: Any) -> HttpLoad:
        return HttpLoad(self.base_url, self.ledger, f"{self.scenario}-{prefix}", **options)

    async def api_converged(self, within: float = 30) -> ApiVerdict:
        """Every accepted task's record in the task API, long-polled until final."""
        return await api_converged(self.base_url, self.ledger, patience(within))

    async def outcomes(self, within: float = 60, linger: float = 1.0) -> Verdict:
        """Read events until every accepted task has an outcome, then classify.

        With a gateway running, the task API is judged too: every accepted task must be
        final in ``GET /v1/tasks/{id}`` within ``API_WITHIN`` seconds of the broker's events.
        """
        await self.tap.collect(
            self.ledger, self.ledger.finished, patience(within), linger, explain=self.explain
        )
        if self.gateway is not None and self.gateway.alive():
            (await self.api_converged(API_WITHIN)).check()
        return self.ledger.verdict()


async def open_harness(
    node: RabbitNode, spawner: Spawner, scenario: str, **overrides: Any
) -> Harness:
    """A scenario's world on ``node``: settings, and the ledger's queue declared before any load.

    The node is started first if an earlier, failed scenario left it down, so
    one failure does not cascade into the rest of the suite.
    """
    if not node.running():
        await asyncio.to_thread(node.start)
    # The gateway's own task store, private to this scenario (a file shared by concurrent
    # gateways would be locked); dropped by node_settings where the setting does not exist.
    store = {"store_url": f"sqlite:///{spawner.log_dir / 'tasks.db'}"}
    settings = node_settings(node, **{**store, **overrides})
    tap = EventTap(node.url, Names(settings.namespace), settings.queue_type)
    await tap.declare()
    return Harness(scenario, node, spawner, settings, tap)


def run_once(scenario: Callable[[Spawner], Coroutine[Any, Any, T]], log_dir: Path) -> T:
    """Run one scenario on an event loop of its own, for a module-scoped fixture.

    Why: some scenarios are costly to run and are judged by several tests, of
    which some are expected failures (a known production bug); one run feeds
    them all. Every process the scenario started is killed by PID afterwards.
    """
    spawner = Spawner(log_dir)
    try:
        return asyncio.run(scenario(spawner))
    finally:
        spawner.kill_all()
