"""The benchmark's own broker access: namespaces, pre-filling, queue probes and clean-up.

Queue state is read with a passive ``queue.declare`` (ready count and
consumer count): cheap enough to poll every few milliseconds, and it needs
nothing from the broker beyond AMQP (no management plugin).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

from warren.service import topology
from warren.service.settings import Settings
from warren.service.store.model import new_task_id
from warren.service.tasks import BUILTIN_CATALOG
from warren.service.wire import Envelope

PUBLISH_WINDOW = 500  # confirms in flight while pre-filling (pipelined, never one at a time)
ECHO_BODY = b'{"message":"bench"}'


def bench_namespace(prefix: str = "bench") -> str:
    """A fresh namespace per run: nothing a run declares can meet another run's objects."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class QueueState:
    ready: int
    consumers: int


def echo_envelope(sampled: bool = True) -> Envelope:
    """A ``diag.echo`` first attempt, with a trace context as the gateway would have made it.

    The sampled flag matters: consumers sample ``ParentBased``, so a parent's
    flag, not the consumer's ratio, decides whether its spans are recorded.
    """
    task_id = new_task_id()
    flags = "01" if sampled else "00"
    return Envelope(
        id=task_id,
        type="diag.echo",
        queue="diag",
        body=ECHO_BODY,
        attempt=1,
        max_attempts=3,
        timeout_seconds=30.0,
        created_at=datetime.now(UTC),
        traceparent=f"00-{task_id}-{task_id[:16]}-{flags}",
    )


class BenchBroker:
    """One connection and channel of the benchmark driver itself."""

    def __init__(self, connection: AbstractConnection, channel: AbstractChannel) -> None:
        self.connection = connection
        self.channel = channel

    @classmethod
    async def open(cls, url: str) -> BenchBroker:
        connection = await aio_pika.connect(url, client_properties={"connection_name": "bench"})
        channel = await connection.channel(publisher_confirms=True)
        return cls(connection, channel)

    def server_version(self) -> str:
        props = self.connection.transport.connection.server_properties  # type: ignore[union-attr]
        version = props.get("version", b"?")
        return version.decode() if isinstance(version, bytes) else str(version)

    async def state(self, queue: str) -> QueueState:
        raw = await self.channel.get_underlay_channel()
        ok = await raw.queue_declare(queue, passive=True)
        return QueueState(ok.message_count or 0, ok.consumer_count or 0)

    async def purge(self, *queues: str) -> None:
        raw = await self.channel.get_underlay_channel()
        for queue in queues:
            await raw.queue_purge(queue)

    async def declare_queue(self, name: str, bind: tuple[str, str] | None = None) -> None:
        """A durable queue of the benchmark's own (a baseline's, a counting queue)."""
        queue = await self.channel.declare_queue(name, durable=True)
        if bind is not None:
            await queue.bind(bind[0], bind[1])

    async def declare_warren(self, settings: Settings) -> topology.Topology:
        shape = topology.build(settings, BUILTIN_CATALOG.queues)
        await topology.declare(self.channel, shape)
        return shape

    async def prefill(self, exchange: str, routing_key: str, envelopes: Sequence[Envelope]) -> None:
        """Publish persistent messages, ``PUBLISH_WINDOW`` confirms in flight at a time."""
        target: AbstractExchange = await self.channel.get_exchange(exchange, ensure=False)
        for start in range(0, len(envelopes), PUBLISH_WINDOW):
            window = envelopes[start : start + PUBLISH_WINDOW]
            await asyncio.gather(*(target.publish(e.to_message(), routing_key) for e in window))

    async def delete(
        self,
        shape: topology.Topology | None,
        queues: Sequence[str] = (),
        exchanges: Sequence[str] = (),
    ) -> None:
        """Remove a run's topology and extra objects; each on a fresh channel, errors ignored."""
        channel = await self.connection.channel()
        try:
            if shape is not None:
                with contextlib.suppress(aiormq.exceptions.AMQPError):
                    await topology.delete(channel, shape)
            for queue in queues:
                channel = await _ignore_missing(channel, self.connection, queue, is_queue=True)
            for exchange in exchanges:
                channel = await _ignore_missing(channel, self.connection, exchange, is_queue=False)
        finally:
            with contextlib.suppress(Exception):
                await channel.close()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.connection.close()


async def _ignore_missing(
    channel: AbstractChannel, connection: AbstractConnection, name: str, *, is_queue: bool
) -> AbstractChannel:
    """Delete one object; a failure closes the channel, so hand back a usable one."""
    try:
        if is_queue:
            await channel.queue_delete(name)
        else:
            await channel.exchange_delete(name)
    except aiormq.exceptions.AMQPError:
        return await connection.channel()
    return channel
