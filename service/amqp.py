"""Broker connections and confirmed publishing, shared by the gateway and consumers.

Every publish is confirmed and mandatory with ``on_return_raises``: without it
the broker acks an unroutable message after returning it, and it would be
reported as delivered. Any failure — broker down, nack, return, timeout —
becomes one ``PublishError``; it is never retried blindly here, because a
publish that timed out may have been enqueued.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from aio_pika.exceptions import AMQPError
from tenacity import (
    AsyncRetrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from service.envelope import Envelope
from service.errors import PublishError
from service.events import event_message
from service.metrics import PUBLISH_CONFIRM
from service.settings import Settings
from service.topology import Declared, Names, Topology, declare

log = logging.getLogger(__name__)

CONNECT_ERRORS = (AMQPError, ConnectionError, OSError, asyncio.TimeoutError)


async def connect(settings: Settings, name: str) -> AbstractRobustConnection:
    """A robust connection, retried with backoff for ``connect_timeout_seconds`` at start-up.

    After start-up aio-pika's robust connection reconnects by itself and
    restores channels, QoS, declarations and consumers.
    """
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(CONNECT_ERRORS),
        stop=stop_after_delay(settings.connect_timeout_seconds),
        wait=wait_exponential(multiplier=0.2, max=5),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    ):
        with attempt:
            return await _connect_once(settings, name)
    raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover


async def _connect_once(settings: Settings, name: str) -> AbstractRobustConnection:
    """One attempt; a failed or cancelled one is closed, or its reconnect task outlives it
    (a SIGTERM during start-up would then hang the process at exit)."""
    connection = aio_pika.RobustConnection(
        aio_pika.connection.make_url(settings.broker_url),
        client_properties={"connection_name": f"warren-{name}"},
    )
    try:
        await connection.connect(timeout=settings.connect_timeout_seconds)
    except BaseException:
        await asyncio.shield(connection.close())
        raise
    return connection


class Publisher:
    """Confirmed, mandatory publishes through one channel to Warren's exchanges."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        channel: AbstractChannel,
        topology: Topology,
        declared: Declared,
        timeout: float,
    ) -> None:
        self._connection = connection
        self._channel = channel
        self._exchanges = declared.exchanges
        self._timeout = timeout
        self.names: Names = topology.names
        self.declared = declared

    @classmethod
    async def open(
        cls, connection: AbstractRobustConnection, topology: Topology, confirm_timeout: float
    ) -> Publisher:
        """Open a confirming channel and declare the topology on it (idempotent)."""
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        declared = await declare(channel, topology)
        return cls(connection, channel, topology, declared, confirm_timeout)

    @property
    def ready(self) -> bool:
        return self._connection.connected.is_set() and not self._channel.is_closed

    @property
    def work_exchange(self) -> str:
        return self.names.work_exchange

    async def publish_task(self, envelope: Envelope) -> None:
        await self.publish(self.names.work_exchange, envelope.to_message(), envelope.queue)

    async def publish_retry(self, next_attempt: Envelope, tier: float) -> None:
        """Park the next attempt in its TTL tier queue; it comes back to the work queue."""
        key = self.names.retry_key(next_attempt.queue, tier)
        await self.publish(self.names.retry_exchange, next_attempt.to_message(), key)

    async def publish_dead(self, message: aio_pika.Message, queue: str) -> None:
        await self.publish(self.names.dead_exchange, message, queue)

    async def publish_event(self, body: dict[str, Any]) -> None:
        """Events fan out to whoever is bound; with nobody bound there is nothing to lose."""
        key = self.names.event_key(body["queue"], body["status"])
        await self.publish(self.names.events_exchange, event_message(body), key, mandatory=False)

    async def publish(
        self, exchange: str, message: aio_pika.Message, routing_key: str, *, mandatory: bool = True
    ) -> None:
        """Return only once the broker has confirmed the message; else raise ``PublishError``."""
        if not self._connection.connected.is_set():
            raise PublishError("not connected to the broker")
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                await self._exchanges[exchange].publish(message, routing_key, mandatory=mandatory)
            PUBLISH_CONFIRM.record(
                time.perf_counter() - started, {"exchange": exchange.rsplit(".", 1)[-1]}
            )
        except TimeoutError as exc:
            raise PublishError(f"no confirm within {self._timeout}s (outcome unknown)") from exc
        except aio_pika.exceptions.PublishError as exc:
            raise PublishError(f"unroutable: no queue bound for {routing_key!r}") from exc
        except aio_pika.exceptions.DeliveryError as exc:
            raise PublishError("the broker refused the message (nack)") from exc
        except (AMQPError, ConnectionError, RuntimeError) as exc:
            raise PublishError(f"broker connection failed: {exc!r}") from exc

    async def close(self) -> None:
        await self._channel.close()
