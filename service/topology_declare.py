"""Declaring a ``Topology`` on a channel (passive: checking that it exists), and deleting it.

``declare`` is idempotent and keeps the declared objects, so aio-pika's robust
channel re-declares them (and resumes consumers) after a reconnect.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from aio_pika.exceptions import ChannelNotFoundEntity

from warren.service.errors import ConfigurationError
from warren.service.topology_specs import ExchangeSpec, QueueSpec, Topology


@dataclass
class Declared:
    """References to what was declared; holding them keeps robust re-declaration working."""

    exchanges: dict[str, AbstractExchange] = field(default_factory=dict)
    queues: dict[str, AbstractQueue] = field(default_factory=dict)


async def declare(channel: AbstractChannel, topology: Topology) -> Declared:
    """Declare everything (idempotent: the same arguments are a no-op on the broker).

    Passive (``topology.passive``): only check that every exchange and queue exists, which
    RabbitMQ allows without any permission; bindings cannot be checked, so they are not.
    """
    declared = Declared()
    for ex in topology.exchanges:
        declared.exchanges[ex.name] = await _declare_exchange(channel, topology, ex)
    for q in topology.queues:
        declared.queues[q.name] = await _declare_queue(channel, topology, q)
    if not topology.passive:
        for b in topology.bindings:
            source = declared.exchanges[b.exchange]
            if b.to_exchange:
                await declared.exchanges[b.queue].bind(source, b.routing_key)
            else:
                await declared.queues[b.queue].bind(source, b.routing_key)
    return declared


async def _declare_exchange(
    channel: AbstractChannel, topology: Topology, spec: ExchangeSpec
) -> AbstractExchange:
    kind = aio_pika.ExchangeType(spec.kind)
    if not topology.passive:
        return await channel.declare_exchange(spec.name, kind, durable=True)
    try:
        return await channel.declare_exchange(spec.name, kind, durable=True, passive=True)
    except ChannelNotFoundEntity:
        raise _missing("exchange", spec.name) from None


async def _declare_queue(
    channel: AbstractChannel, topology: Topology, spec: QueueSpec
) -> AbstractQueue:
    if not topology.passive:
        return await channel.declare_queue(spec.name, durable=True, arguments=spec.args)
    try:
        return await channel.declare_queue(spec.name, durable=True, passive=True)
    except ChannelNotFoundEntity:
        raise _missing("queue", spec.name) from None


def _missing(kind: str, name: str) -> ConfigurationError:
    return ConfigurationError(
        f"{kind} {name!r} does not exist and declare_topology is off: apply the topology first "
        "(`warren topology apply` as the deploy user, or the broker definitions)"
    )


async def declare_work_queue(
    channel: AbstractChannel, topology: Topology, queue: str
) -> AbstractQueue:
    """Declare just the work queue of ``queue`` (on a consuming channel; the rest is declared
    on the publishing one)."""
    return await declare_queue(channel, topology, topology.names.work_queue(queue))


async def declare_queue(channel: AbstractChannel, topology: Topology, name: str) -> AbstractQueue:
    """Declare one queue of the topology by its full name (e.g. the recorder queue, on its own
    consuming channel), with the arguments the topology gives it."""
    spec = next(q for q in topology.queues if q.name == name)
    return await _declare_queue(channel, topology, spec)


async def delete(channel: AbstractChannel, topology: Topology) -> None:
    """Remove everything ``declare`` made (tests, and ``warren topology delete``)."""
    for q in topology.queues:
        await channel.queue_delete(q.name)
    for ex in topology.exchanges:
        await channel.exchange_delete(ex.name)
