"""Confirmed publishing, shared by the gateway and consumers (connections: ``connections``).

Every publish is confirmed and mandatory with ``on_return_raises``: without it
the broker acks an unroutable message after returning it, and it would be
reported as delivered. Any failure — broker down, nack, return, timeout —
becomes one ``PublishError`` (a nack: ``QueueFull``, certainly not enqueued);
it is never retried blindly here, because a publish that timed out may have
been enqueued.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from aio_pika.exceptions import AMQPError
from aiormq import spec

from warren.service import coalesced
from warren.service.coalesced import Gathered, Outgoing
from warren.service.errors import PublishError, QueueFull
from warren.service.metrics import PUBLISH_CONFIRM
from warren.service.topology import Names, Topology, declare
from warren.service.wire import Envelope, EventMessage
from warren.service.wire.task_header import task_message

log = logging.getLogger(__name__)

UNBLOCKED_EVENT = "_Connection__connection_unblocked"  # aiormq.Connection's, name-mangled
BLOCKED_POLL_SECONDS = 0.2


class WireMessage(Protocol):
    """What a publish needs: ``aio_pika.Message`` is one, ``wire.EventMessage`` another."""

    @property
    def body(self) -> bytes: ...

    @property
    def properties(self) -> spec.Basic.Properties: ...


class Publisher:
    """Confirmed, mandatory publishes through one channel to Warren's exchanges.

    Two ways to publish: ``publish`` awaits the confirm within the publish
    timeout (the gateway: an answer is due); ``send`` starts a publish and hands
    back its confirm, so a consumer can start the few publishes of one outcome
    and await their confirms together (one broker round trip, not one each).
    Publishes started one after another go out in that order: one channel, and
    its lock is first come, first served. ``send_batch`` starts many at once (the
    gateway's batch route), written as one when aiormq allows it (``coalesced``), and
    ``publish_task`` writes the tasks of concurrent requests together the same way.
    """

    def __init__(self, topology: Topology, timeout: float) -> None:
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._topology = topology
        self.timeout = timeout
        self.names: Names = topology.names
        self._labels = {e.name: {"exchange": e.name.rsplit(".", 1)[-1]} for e in topology.exchanges}
        self.coalesces = False
        self._gathered = Gathered(self.send_batch)

    @classmethod
    async def open(
        cls, connection: AbstractRobustConnection, topology: Topology, confirm_timeout: float
    ) -> Publisher:
        """Open a confirming channel and declare the topology on it (idempotent)."""
        publisher = cls(topology, confirm_timeout)
        await publisher.attach(connection)
        return publisher

    async def attach(self, connection: AbstractRobustConnection) -> None:
        """Publish through ``connection`` from now on. Until then every publish fails fast
        (``not connected``): the gateway is created before its broker answers."""
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await declare(channel, self._topology)
        self.coalesces = coalesced.supported(await channel.get_underlay_channel())
        if not self.coalesces:
            log.warning(
                "batches publish message by message: this aiormq is not the one the coalesced "
                "publish was written against (%s)",
                coalesced.WRITTEN_AGAINST,
            )
        self._connection, self._channel = connection, channel

    @property
    def ready(self) -> bool:
        connection, channel = self._connection, self._channel
        if connection is None or channel is None:
            return False
        return connection.connected.is_set() and not channel.is_closed

    @property
    def blocked(self) -> bool:
        """The broker blocks this connection (a resource alarm): publishes wait, unconfirmed.

        RabbitMQ sends ``connection.blocked`` the first time a connection publishes
        under a memory or disk alarm, and ``connection.unblocked`` when it clears.
        aiormq tracks that in an event it only exposes as a wait (``ready()``), so
        the flag is read from the event itself; a missing event reads "not blocked".
        """
        if self._connection is None:
            return False
        transport = self._connection.transport
        unblocked = getattr(transport and transport.connection, UNBLOCKED_EVENT, None)
        return (
            isinstance(unblocked, asyncio.Event)
            and not unblocked.is_set()
            and self._connection.connected.is_set()
        )

    async def unblocked(self) -> None:
        """Return once the connection is not blocked (or is lost: publishes then fail fast).

        A poll, not aiormq's ``ready()``: that waits forever on a connection that
        was lost while blocked, and a robust reconnect replaces the connection.
        """
        while self.blocked:  # noqa: ASYNC110
            await asyncio.sleep(BLOCKED_POLL_SECONDS)

    def labels(self, exchange: str) -> dict[str, str]:
        """The metric labels of ``exchange``, built once (the metrics SDK hashes each dict)."""
        labels = self._labels.get(exchange)
        if labels is None:
            labels = self._labels[exchange] = {"exchange": exchange.rsplit(".", 1)[-1]}
        return labels

    @property
    def topology(self) -> Topology:
        return self._topology

    @property
    def work_exchange(self) -> str:
        return self.names.work_exchange

    async def publish_task(self, envelope: Envelope) -> None:
        """Publish a task, confirmed within the timeout, as ``publish``; the tasks published
        in one loop turn (concurrent requests) are written together (``coalesced.Gathered``)."""
        exchange = self.names.work_exchange
        if not self.coalesces:
            await self.publish(exchange, envelope.to_message(), envelope.queue)
            return
        started = time.perf_counter()
        properties, encoded = task_message(envelope)
        message = Outgoing(exchange, envelope.queue, envelope.body, properties, encoded=encoded)
        confirm = self._gathered.send(message)
        # A timer on the confirm itself, not ``asyncio.timeout`` (a context manager and a
        # cancellation per request): expired, the confirm fails, and if it was not written
        # yet it never will be (``Gathered`` leaves out a confirm already settled).
        timer = asyncio.get_running_loop().call_later(self.timeout, _expire, confirm, self.timeout)
        try:
            await confirm
        finally:
            timer.cancel()
        PUBLISH_CONFIRM.record(time.perf_counter() - started, self.labels(exchange))

    def send_retry(self, next_attempt: Envelope, tier: float) -> asyncio.Future[None]:
        """Park the next attempt in its TTL tier queue; it comes back to the work queue."""
        key = self.names.retry_key(next_attempt.queue, tier)
        return self.send(self.names.retry_exchange, next_attempt.to_message(), key)

    def send_dead(self, message: WireMessage, queue: str) -> asyncio.Future[None]:
        return self.send(self.names.dead_exchange, message, queue)

    def send_event(self, event: EventMessage) -> asyncio.Future[None]:
        """Events fan out to whoever is bound; with nobody bound there is nothing to lose."""
        return self.send(self.names.events_exchange, event, event.routing_key, mandatory=False)

    def send(
        self, exchange: str, message: WireMessage, routing_key: str, *, mandatory: bool = True
    ) -> asyncio.Future[None]:
        """Start a publish now; the future is its confirm, without a deadline.

        It fails with ``PublishError``. How long to wait for it is the caller's
        decision: under a resource alarm it may take as long as the alarm.
        """
        confirm = asyncio.ensure_future(self._confirm(exchange, message, routing_key, mandatory))
        confirm.add_done_callback(_retrieve)  # one left behind (a caller gave up) fails quietly
        return confirm

    async def send_batch(self, batch: Sequence[Outgoing]) -> list[asyncio.Future[None]]:
        """Start every publish of ``batch`` at once; their confirms, in order, without deadline.

        Each confirm fails as ``send``'s does (``QueueFull`` on a nack, ``PublishError``
        when returned unroutable, when the connection is lost or is not there). The
        frames of the whole batch are written as one (``coalesced``: one lock, one
        write, not one of each per message); with an aiormq the coalesced publish does
        not know, message by message. Returns once the batch is written.
        """
        if not self.coalesces:
            return [self.send(m.exchange, m, m.routing_key, mandatory=m.mandatory) for m in batch]
        try:
            channel = await self._underlay()
            confirms = await coalesced.publish(channel, batch)
        except PublishError as exc:
            return [_failed(exc) for _ in batch]
        except (AMQPError, ConnectionError, RuntimeError) as exc:
            return [_failed(PublishError(f"broker connection failed: {exc!r}")) for _ in batch]
        return [_mapped(confirm, m.routing_key) for confirm, m in zip(confirms, batch, strict=True)]

    async def _underlay(self) -> Any:
        """The aiormq channel under the robust one; ``PublishError`` when not connected."""
        connection, robust_channel = self._connection, self._channel
        if connection is None or robust_channel is None or not connection.connected.is_set():
            raise PublishError("not connected to the broker")
        return await robust_channel.get_underlay_channel()

    async def publish(
        self, exchange: str, message: WireMessage, routing_key: str, *, mandatory: bool = True
    ) -> None:
        """Return only once the broker has confirmed the message; else raise ``PublishError``."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                await self._confirm(exchange, message, routing_key, mandatory)
        except TimeoutError as exc:
            raise PublishError(f"no confirm within {self.timeout}s (outcome unknown)") from exc
        PUBLISH_CONFIRM.record(time.perf_counter() - started, self.labels(exchange))

    async def _confirm(
        self, exchange: str, message: WireMessage, routing_key: str, mandatory: bool
    ) -> None:
        try:
            channel = await self._underlay()
            await channel.basic_publish(
                message.body,
                exchange=exchange,
                routing_key=routing_key,
                properties=message.properties,
                mandatory=mandatory,
            )
        except PublishError:
            raise
        except Exception as exc:
            raise _publish_error(exc, routing_key) from exc

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


def _publish_error(exc: BaseException, routing_key: str) -> PublishError:
    """What a failed publish means to Warren; anything else is not a publish failure."""
    if isinstance(exc, aio_pika.exceptions.PublishError):
        return PublishError(f"unroutable: no queue bound for {routing_key!r}")
    if isinstance(exc, aio_pika.exceptions.DeliveryError):
        return QueueFull("the broker refused the message (nack): the queue is full")
    if isinstance(exc, AMQPError | ConnectionError | RuntimeError):
        return PublishError(f"broker connection failed: {exc!r}")
    raise exc


def _expire(confirm: asyncio.Future[None], timeout: float) -> None:
    if not confirm.done():
        confirm.set_exception(PublishError(f"no confirm within {timeout}s (outcome unknown)"))


def _failed(error: PublishError) -> asyncio.Future[None]:
    confirm: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    confirm.set_exception(error)
    confirm.add_done_callback(_retrieve)
    return confirm


def _mapped(raw: asyncio.Future[Any], routing_key: str) -> asyncio.Future[None]:
    """A confirm of aiormq's (an ack frame, or its exception) as ``send``'s: None or a
    ``PublishError``. A connection lost rejects aiormq's futures with whatever the
    connection died of, even a bare ``Exception``: a publish error as well."""
    confirm: asyncio.Future[None] = raw.get_loop().create_future()

    def settle(raw: asyncio.Future[Any]) -> None:
        if confirm.done():
            return  # the caller gave up on it
        if raw.cancelled():
            confirm.set_exception(PublishError("broker connection failed: publish cancelled"))
        elif (exc := raw.exception()) is None:
            confirm.set_result(None)
        elif isinstance(exc, aio_pika.exceptions.PublishError | aio_pika.exceptions.DeliveryError):
            confirm.set_exception(_publish_error(exc, routing_key))
        else:
            confirm.set_exception(PublishError(f"broker connection failed: {exc!r}"))
        confirm.add_done_callback(_retrieve)  # failed, and maybe nobody waits any more

    raw.add_done_callback(settle)
    return confirm


def _retrieve(confirm: asyncio.Future[None]) -> None:
    if not confirm.cancelled():
        confirm.exception()
