"""A consumer process for one work queue: connect, declare, consume with prefetch, drain on SIGTERM.

Two connections, as RabbitMQ advises: one consumes and acks, one publishes
(retries, dead letters, events). When the broker blocks publishers under a
resource alarm, only the publishing connection is blocked.

Prefetch (deliveries held unacked) is larger than concurrency (handlers
running): a delivery whose handler returned waits for its event batch's
confirm without a handler slot, and the next ones are already here when a slot
frees. The default, max(128, 4 * concurrency), keeps a drain of short tasks
full while confirms are pending; for long tasks set ``consumer_prefetch`` to
the concurrency (fair dispatch across processes).

Shutdown never loses a task: deliveries are acked only after their outcome is
published, anything still running when the grace ends is nacked with requeue,
and whatever is left unacked when the connection closes the broker requeues.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from aiormq.abc import DeliveredMessage

from warren.consumers.acks import Acks
from warren.consumers.batcher import EventBatcher
from warren.consumers.cancellation import Cancellations
from warren.consumers.context import Resources
from warren.consumers.delivery import DeliveryProcessor
from warren.consumers.health import HealthServer
from warren.consumers.inbound import Delivery
from warren.consumers.poison import DeliveryGuard
from warren.consumers.redelivery import DeliveryBound
from warren.consumers.registry import Registry, check_timeouts
from warren.consumers.settle import Settler
from warren.consumers.subscription import Subscription
from warren.consumers.threads import HandlerThreads
from warren.service import heap, topology
from warren.service.amqp import Publisher
from warren.service.background import Background
from warren.service.connections import connect
from warren.service.contracts import Catalog
from warren.service.metrics import INFLIGHT_COUNTS, QUEUE_DEPTHS
from warren.service.settings import Settings
from warren.service.supervisor import run_until_signal
from warren.service.telemetry import setup_telemetry

log = logging.getLogger(__name__)
BROKER_CALL_TIMEOUT = 5.0  # bounds each shutdown step that talks to the broker
DEPTH_INTERVAL = 5.0  # seconds between samples of this queue's depths for /metrics


class Consumer:
    """Consumes one queue until ``stop``; every delivery runs as its own asyncio task."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        registry: Registry,
        queue: str,
        concurrency: int | None = None,
        health_port: int | None = None,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.concurrency = concurrency or settings.consumer_concurrency
        self.prefetch = settings.prefetch_for(self.concurrency)
        self.worker = settings.worker_name
        # Fail loudly before touching the broker: a missing handler or an impossible timeout.
        self._handlers = registry.for_queue(catalog, queue)
        check_timeouts(catalog, queue, settings)
        self._topology = topology.build(settings, [queue])
        self._inflight: set[asyncio.Task[Any]] = set()
        self._connections: list[AbstractRobustConnection] = []
        self._executor = HandlerThreads(self.concurrency, f"warren-{queue}")
        self._resources = Resources(settings.outbound_allow_private_networks, registry.settings)
        self._acks = Acks()
        self._settler: Settler | None = None
        self._processor: DeliveryProcessor | None = None
        self._subscription: Subscription | None = None
        self._stopped = False
        port = settings.health_port if health_port is None else health_port
        self._health = HealthServer(lambda: self.ready, settings.http_host, port) if port else None
        self._loops = Background()  # supervised background loops (restarted after a crash)
        self._sampled = asyncio.Event()

    @property
    def ready(self) -> bool:
        """Consuming, not stopping, both broker connections up, and queue depths sampled."""
        return (
            self._subscription is not None
            and self._subscription.consuming
            and not self._stopped
            and all(c.connected.is_set() for c in self._connections)
            and self._sampled.is_set()
            and self._loops.healthy
        )

    async def start(self) -> None:
        """Probes first (``/readyz`` 503 until consuming), then the broker, however long it
        takes to answer; a broker refusing our user raises ``ConfigurationError``."""
        setup_telemetry(self.settings, f"consumer-{self.queue}")
        if self._health is not None:
            await self._health.start()
        publishing = await connect(self.settings, f"{self.queue}-publish")
        self._connections.append(publishing)
        consuming = await connect(self.settings, f"{self.queue}-consume")
        self._connections.append(consuming)
        publisher = await Publisher.open(
            publishing, self._topology, self.settings.publish_timeout_seconds
        )
        # Before the first delivery: every cancellation broadcast so far (the control stream).
        cancellations = Cancellations(self.settings.cancellation_retention_seconds)
        await cancellations.follow(consuming, publisher, self._topology)
        batcher = EventBatcher(publisher, self.settings)  # one per process: group commit
        self._settler = settler = Settler(self.queue, publisher, self.worker, self._acks, batcher)
        self._processor = processor = DeliveryProcessor(
            self.queue,
            self._handlers,
            settler,
            self.settings,
            self._executor,
            self._resources,
            self.worker,
            cancellations,
            self.concurrency,
        )
        guard = self._guard(publisher, settler)
        channel = await consuming.channel()
        assert isinstance(channel, AbstractRobustChannel)
        await channel.set_qos(prefetch_count=self.prefetch)
        # Declared (not fetched), so the robust channel declares it again on a reopen.
        queue = await topology.declare_work_queue(channel, self._topology, self.queue)

        async def on_delivery(message: DeliveredMessage) -> None:
            # Runs in the task aiormq starts per delivery (cancelled if the channel closes).
            task = asyncio.current_task()
            assert task is not None
            delivery = Delivery(message)
            self._inflight.add(task)
            self._acks.track(delivery)
            try:
                if self._stopped:
                    # Dispatched between our basic.cancel and its cancel-ok (or while
                    # start-up was interrupted): hand it back untouched, never start it.
                    await self._give_back(delivery)
                else:
                    await guard.run(processor.process, delivery)
            finally:
                self._inflight.discard(task)

        self._subscription = Subscription(channel, queue, on_delivery)
        await self._subscription.start()
        self._loops.start("consumer-keeper", self._subscription.keep)
        INFLIGHT_COUNTS[self.queue] = lambda: len(self._inflight)
        self._loops.start("depth-sampler", lambda: self._sample_depths(publishing))
        try:  # once ready, a scrape shows queue depths; a slow first sample only delays /readyz
            async with asyncio.timeout(BROKER_CALL_TIMEOUT):
                await self._sampled.wait()
        except TimeoutError:
            log.warning("no queue depth sample yet; /readyz waits for the first one")
        log.info(
            "consuming %s (worker %s, concurrency %d, prefetch %d)",
            queue.name,
            self.worker,
            self.concurrency,
            self.prefetch,
        )

    def _guard(self, publisher: Publisher, settler: Settler) -> DeliveryGuard:
        """Poison never stalls the queue, and a message that kills its consumer is bounded."""
        bound = DeliveryBound(self.queue, self.settings, publisher, settler, self._acks)
        return DeliveryGuard(self.queue, settler, self._acks, bound)

    @property
    def inflight(self) -> int:
        """Deliveries held (unacked): at most the prefetch."""
        return len(self._inflight)

    @property
    def running(self) -> int:
        """Handlers running now: at most the concurrency."""
        return self._processor.running if self._processor is not None else 0

    async def stop(self, grace: float | None = None) -> None:
        """Stop taking deliveries, let in-flight tasks finish within ``grace``, requeue the rest.

        Safe after a failed or interrupted ``start``: it closes whatever was opened.
        """
        if self._stopped:
            return
        self._stopped = True  # from here on a delivery is given back, not started
        if self._processor is not None:
            self._processor.stop()  # and so is one still waiting for a handler slot
        grace = self.settings.consumer_grace_seconds if grace is None else grace
        deadline = asyncio.get_running_loop().time() + grace
        try:
            await self._loops.close("depth-sampler", "consumer-keeper")
            await self._cancel_consumer()
            await self._drain(deadline)
            if self._settler is not None:  # events an alarm kept back: the grace is theirs too
                await self._settler.flush(deadline - asyncio.get_running_loop().time())
            await self._resources.close()
            for connection in reversed(self._connections):
                try:
                    async with asyncio.timeout(BROKER_CALL_TIMEOUT):
                        await connection.close()
                except Exception as exc:  # the broker requeues what the connection left unacked
                    log.warning("closing a broker connection failed: %r", exc)
        finally:
            INFLIGHT_COUNTS.pop(self.queue, None)
            self._executor.shutdown(wait=False, cancel_futures=True)
            if self._health is not None:
                await self._health.stop()
        if self._executor.running:
            log.warning(
                "%d sync handlers still running after the grace; their deliveries were "
                "requeued and the process does not wait for them",
                self._executor.running,
            )
        log.info("consumer of %s stopped", self.queue)

    async def _give_back(self, delivery: Delivery) -> None:
        if self._settler is not None:
            await self._settler.requeue(delivery, "the consumer is stopping (not started)")

    async def _sample_depths(self, connection: AbstractRobustConnection) -> None:
        """Sample ready counts of this queue's work, retry and dead queues for /metrics."""
        names = self._topology.names
        kinds = {
            "work": [names.work_queue(self.queue)],
            "dead": [names.dead_queue(self.queue)],
            "retry": [names.retry_queue(self.queue, t) for t in self._topology.tiers],
        }
        channel = await connection.channel(publisher_confirms=False)
        while True:
            try:
                if channel.is_closed:
                    await channel.reopen()
                raw = await channel.get_underlay_channel()
                for kind, queues in kinds.items():
                    counts = [
                        (await raw.queue_declare(q, passive=True)).message_count or 0
                        for q in queues
                    ]
                    QUEUE_DEPTHS[(self.queue, kind)] = sum(counts)
            except Exception as exc:  # a sample missed during a reconnect is not worth more
                log.debug("queue depth sample failed: %r", exc)
            self._sampled.set()
            await asyncio.sleep(DEPTH_INTERVAL)

    async def _cancel_consumer(self) -> None:
        if self._subscription is None:
            return
        try:
            async with asyncio.timeout(BROKER_CALL_TIMEOUT):
                await self._subscription.cancel()
        except Exception as exc:  # closing anyway; the broker requeues unacked deliveries
            log.warning("cancelling the consumer failed: %r", exc)

    async def _drain(self, deadline: float) -> None:
        """Wait for in-flight tasks until ``deadline``, then cancel (and so requeue) the rest."""
        loop = asyncio.get_running_loop()
        # A loop, not one wait: deliveries dispatched before the cancel-ok join the set late.
        while self._inflight and (remaining := deadline - loop.time()) > 0:
            log.info("draining %d in-flight tasks (%.1fs left)", len(self._inflight), remaining)
            await asyncio.wait(set(self._inflight), timeout=remaining)
        pending = set(self._inflight)
        if pending:
            log.warning("grace over: requeueing %d unfinished tasks", len(pending))
            for task in pending:
                task.cancel()  # the delivery path nacks with requeue on cancellation
            await asyncio.wait(pending, timeout=BROKER_CALL_TIMEOUT)


async def run(
    settings: Settings,
    catalog: Catalog,
    registry: Registry,
    queue: str,
    concurrency: int | None,
    health_port: int | None = None,
) -> None:
    """Run until SIGTERM or SIGINT, then drain and return (the process exits 0).

    A SIGTERM while still starting (waiting for the broker, however long)
    abandons the start and exits cleanly at once.
    """
    consumer = Consumer(settings, catalog, registry, queue, concurrency, health_port)

    async def start() -> None:
        await consumer.start()
        heap.settle()  # a process of its own: start-up's objects are never walked again

    try:
        await run_until_signal(start(), queue)
    finally:
        await consumer.stop()
