"""Every exchange, queue and binding Warren uses, as values, with their names derived here only.

```
gateway ──► <ns>.tasks (direct) ──key q──► <ns>.q ──► consumers of q
                 ▲                                        │ retry: publish key "q.<tier>"
                 │ dead-lettered on TTL expiry             ▼
            <ns>.q.retry.<tier>  ◄──key q.<tier>── <ns>.retry (direct)
  consumers ──► <ns>.dead (direct) ──key q──► <ns>.q.dead     (kept until inspected)
  consumers ──► <ns>.events (topic) ──key q.<status>──► whoever binds (status store, …)
                        └──key #──► <ns>.events.recorder (durable: the gateways' recorders share it)
    gateway ──► <ns>.control (fanout) ──► <ns>.control.log (stream: every consumer reads it all)
```

Retry tiers are one TTL queue per (work queue, tier): a queue has one fixed
TTL, so messages expire head-first in order and no short delay waits behind a
long one. ``declare`` is idempotent and keeps the declared objects, so aio-pika's
robust channel re-declares them (and resumes consumers) after a reconnect.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from service.settings import Settings

ExchangeKind = Literal["direct", "topic", "fanout"]


def tier_label(seconds: float) -> str:
    """A tier's name part: ``5s``, ``250ms``; stable for a given delay."""
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


@dataclass(frozen=True)
class Names:
    """The one place names are made from a namespace."""

    namespace: str

    @property
    def work_exchange(self) -> str:
        return f"{self.namespace}.tasks"

    @property
    def retry_exchange(self) -> str:
        return f"{self.namespace}.retry"

    @property
    def dead_exchange(self) -> str:
        return f"{self.namespace}.dead"

    @property
    def events_exchange(self) -> str:
        return f"{self.namespace}.events"

    @property
    def recorder_queue(self) -> str:
        """Every event, for the task store; durable, so events wait while no gateway runs."""
        return f"{self.namespace}.events.recorder"

    @property
    def control_exchange(self) -> str:
        return f"{self.namespace}.control"

    @property
    def control_stream(self) -> str:
        """A stream (non-destructive log) of control messages such as cancellations."""
        return f"{self.namespace}.control.log"

    def work_queue(self, queue: str) -> str:
        return f"{self.namespace}.{queue}"

    def dead_queue(self, queue: str) -> str:
        return f"{self.namespace}.{queue}.dead"

    def retry_queue(self, queue: str, tier: float) -> str:
        return f"{self.namespace}.{queue}.retry.{tier_label(tier)}"

    @staticmethod
    def retry_key(queue: str, tier: float) -> str:
        return f"{queue}.{tier_label(tier)}"

    @staticmethod
    def event_key(queue: str, status: str) -> str:
        return f"{queue}.{status}"


@dataclass(frozen=True)
class ExchangeSpec:
    name: str
    kind: ExchangeKind


@dataclass(frozen=True)
class QueueSpec:
    name: str
    arguments: tuple[tuple[str, Any], ...] = ()

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.arguments)


@dataclass(frozen=True)
class BindingSpec:
    exchange: str
    queue: str
    routing_key: str


@dataclass(frozen=True)
class Topology:
    """The declared shape for a set of work queues; built by ``build`` from settings."""

    names: Names
    queues_served: tuple[str, ...]
    tiers: tuple[float, ...]
    exchanges: tuple[ExchangeSpec, ...]
    queues: tuple[QueueSpec, ...]
    bindings: tuple[BindingSpec, ...]

    def to_definitions(self, vhost: str = "/") -> dict[str, Any]:
        """RabbitMQ definitions (the management import format) of this topology."""
        return {
            "exchanges": [
                {
                    "name": e.name,
                    "vhost": vhost,
                    "type": e.kind,
                    "durable": True,
                    "auto_delete": False,
                    "internal": False,
                    "arguments": {},
                }
                for e in self.exchanges
            ],
            "queues": [
                {
                    "name": q.name,
                    "vhost": vhost,
                    "durable": True,
                    "auto_delete": False,
                    "arguments": q.args,
                }
                for q in self.queues
            ],
            "bindings": [
                {
                    "source": b.exchange,
                    "vhost": vhost,
                    "destination": b.queue,
                    "destination_type": "queue",
                    "routing_key": b.routing_key,
                    "arguments": {},
                }
                for b in self.bindings
            ],
        }


def _queue_args(settings: Settings, **extra: Any) -> tuple[tuple[str, Any], ...]:
    args: dict[str, Any] = {"x-queue-type": settings.queue_type}
    if settings.queue_type == "quorum":
        # At-least-once dead-lettering (quorum only) needs reject-publish overflow;
        # without it a message can be lost between a queue and its dead-letter target.
        args["x-dead-letter-strategy"] = "at-least-once"
        args["x-overflow"] = "reject-publish"
    args.update(extra)
    return tuple(sorted(args.items()))


CONTROL_STREAM_ARGS = (
    # Fixed, so that no setting change makes the declaration inequivalent: readers choose how
    # far back to start (``cancellation_retention_seconds``, at most this age). Small segments,
    # because retention drops whole segments only.
    ("x-max-age", "7D"),
    ("x-queue-type", "stream"),
    ("x-stream-max-segment-size-bytes", 1_000_000),
)


def build(settings: Settings, queues: Iterable[str]) -> Topology:
    """The topology serving ``queues`` (task queue names, e.g. ``diag``)."""
    names = Names(settings.namespace)
    served = tuple(sorted(set(queues)))
    tiers = settings.retry_tiers_seconds
    exchanges = (
        ExchangeSpec(names.work_exchange, "direct"),
        ExchangeSpec(names.retry_exchange, "direct"),
        ExchangeSpec(names.dead_exchange, "direct"),
        ExchangeSpec(names.events_exchange, "topic"),
        ExchangeSpec(names.control_exchange, "fanout"),
    )
    queue_specs: list[QueueSpec] = [
        QueueSpec(names.recorder_queue, _queue_args(settings)),
        QueueSpec(names.control_stream, CONTROL_STREAM_ARGS),
    ]
    bindings: list[BindingSpec] = [
        BindingSpec(names.events_exchange, names.recorder_queue, "#"),
        BindingSpec(names.control_exchange, names.control_stream, ""),
    ]
    for q in served:
        work: dict[str, Any] = {
            "x-dead-letter-exchange": names.dead_exchange,
            "x-dead-letter-routing-key": q,
        }
        if settings.queue_type == "quorum":
            work["x-delivery-limit"] = settings.delivery_limit
        if settings.max_queue_length is not None:
            work["x-max-length"] = settings.max_queue_length
            work["x-overflow"] = "reject-publish"
        queue_specs.append(QueueSpec(names.work_queue(q), _queue_args(settings, **work)))
        bindings.append(BindingSpec(names.work_exchange, names.work_queue(q), q))
        for tier in tiers:
            retry = {
                "x-message-ttl": round(tier * 1000),
                "x-dead-letter-exchange": names.work_exchange,
                "x-dead-letter-routing-key": q,
            }
            queue_specs.append(
                QueueSpec(names.retry_queue(q, tier), _queue_args(settings, **retry))
            )
            bindings.append(
                BindingSpec(
                    names.retry_exchange, names.retry_queue(q, tier), names.retry_key(q, tier)
                )
            )
        queue_specs.append(QueueSpec(names.dead_queue(q), _queue_args(settings)))
        bindings.append(BindingSpec(names.dead_exchange, names.dead_queue(q), q))
    return Topology(names, served, tiers, exchanges, tuple(queue_specs), tuple(bindings))


@dataclass
class Declared:
    """References to what was declared; holding them keeps robust re-declaration working."""

    exchanges: dict[str, AbstractExchange] = field(default_factory=dict)
    queues: dict[str, AbstractQueue] = field(default_factory=dict)


async def declare(channel: AbstractChannel, topology: Topology) -> Declared:
    """Declare everything (idempotent: the same arguments are a no-op on the broker)."""
    declared = Declared()
    for ex in topology.exchanges:
        declared.exchanges[ex.name] = await channel.declare_exchange(
            ex.name, aio_pika.ExchangeType(ex.kind), durable=True
        )
    for q in topology.queues:
        declared.queues[q.name] = await channel.declare_queue(
            q.name, durable=True, arguments=q.args
        )
    for b in topology.bindings:
        await declared.queues[b.queue].bind(declared.exchanges[b.exchange], b.routing_key)
    return declared


async def declare_work_queue(
    channel: AbstractChannel, topology: Topology, queue: str
) -> AbstractQueue:
    """Declare just the work queue of ``queue`` (on a consuming channel; the rest is declared
    on the publishing one)."""
    name = topology.names.work_queue(queue)
    spec = next(q for q in topology.queues if q.name == name)
    return await channel.declare_queue(name, durable=True, arguments=spec.args)


async def declare_queue(channel: AbstractChannel, topology: Topology, name: str) -> AbstractQueue:
    """Declare one queue of the topology by its full name (e.g. the recorder queue, on its own
    consuming channel), with the arguments the topology gives it."""
    spec = next(q for q in topology.queues if q.name == name)
    return await channel.declare_queue(name, durable=True, arguments=spec.args)


async def delete(channel: AbstractChannel, topology: Topology) -> None:
    """Remove everything ``declare`` made (tests, and ``warren topology delete``)."""
    for q in topology.queues:
        await channel.queue_delete(q.name)
    for ex in topology.exchanges:
        await channel.exchange_delete(ex.name)
