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
    gateway ──► <ns>.delay.21 … <ns>.delay.0 (the delay ladder) ──► <ns>.delay.due ──► <ns>.q
```

Delayed tasks walk down the delay ladder (``DELAY_LEVELS`` levels, k = 21 … 0):
the routing key spells the delay in whole seconds as 22 binary digits, most
significant first, then the work queue (``0.…1.1.0.email``). Exchange
``<ns>.delay.<k>`` (topic) sends a message whose digit k is 1 to queue
``<ns>.delay.<2^k>s`` (``x-message-ttl`` 2^k s, dead-lettering to the next
exchange down, the key kept), and one whose digit is 0 straight on to the next
exchange. Below level 0, ``<ns>.delay.due`` routes by the queue name to the
work queue. Every ladder queue holds one TTL, so messages expire in order, and
no process moves them: the delay lives on the broker, never in a worker.

Retry tiers are one TTL queue per (work queue, tier): a queue has one fixed
TTL, so messages expire head-first in order and no short delay waits behind a
long one. ``declare`` is idempotent and keeps the declared objects, so aio-pika's
robust channel re-declares them (and resumes consumers) after a reconnect.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from aio_pika.exceptions import ChannelNotFoundEntity

from warren.service.errors import ConfigurationError
from warren.service.settings import Settings

ExchangeKind = Literal["direct", "topic", "fanout"]
DELAY_LEVELS = 22
"""Levels of the delay ladder: delays up to 2^22 - 1 s (48.5 days) in whole seconds."""
MAX_DELAY_SECONDS = 2**DELAY_LEVELS - 1
CONTROL_DELAY_TAIL = "_control"  # no queue name starts with "_": delayed control messages


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

    def delay_exchange(self, level: int) -> str:
        """Level ``level`` of the delay ladder; the top one is where delayed tasks enter."""
        return f"{self.namespace}.delay.{level}"

    def delay_queue(self, level: int) -> str:
        """The TTL queue of a ladder level, named by its TTL: every message in it waits
        2^level seconds (``<ns>.delay.1s`` … ``<ns>.delay.2097152s``)."""
        return f"{self.namespace}.delay.{2**level}s"

    @property
    def delay_entry(self) -> str:
        return self.delay_exchange(DELAY_LEVELS - 1)

    @property
    def scheduler_leader(self) -> str:
        """Single-active-consumer queue: its one active consumer is the scheduler leader."""
        return f"{self.namespace}.scheduler.leader"

    @property
    def control_relay(self) -> str:
        """Delayed control messages, due: gateways relay them into the control stream (a
        broker dead-letters into no stream, so the ladder cannot reach it directly)."""
        return f"{self.namespace}.control.due"

    @property
    def delay_due(self) -> str:
        """Below level 0: routes a message whose delay is over to its work queue."""
        return f"{self.namespace}.delay.due"

    @staticmethod
    def delay_key(queue: str, seconds: int) -> str:
        """The routing key of a delay: its binary digits, most significant first, then the
        work queue (or ``CONTROL_DELAY_TAIL``); ``seconds`` within ``MAX_DELAY_SECONDS``."""
        if not 0 <= seconds <= MAX_DELAY_SECONDS:
            raise ValueError(f"a delay is 0 to {MAX_DELAY_SECONDS} s, not {seconds}")
        return ".".join([*format(seconds, f"0{DELAY_LEVELS}b"), queue])

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
    """``exchange`` routes ``routing_key`` to ``queue``, or to the exchange of that name when
    ``to_exchange`` (an exchange-to-exchange binding: the delay ladder)."""

    exchange: str
    queue: str
    routing_key: str
    to_exchange: bool = False


@dataclass(frozen=True)
class Topology:
    """The declared shape for a set of work queues; built by ``build`` from settings."""

    names: Names
    queues_served: tuple[str, ...]
    tiers: tuple[float, ...]
    exchanges: tuple[ExchangeSpec, ...]
    queues: tuple[QueueSpec, ...]
    bindings: tuple[BindingSpec, ...]
    passive: bool = False  # only check that everything exists (``declare_topology`` off)

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
                    "destination_type": "exchange" if b.to_exchange else "queue",
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


def honoured_priorities(settings: Settings) -> int:
    """How many priorities (0 to n - 1) the work queues honour: ``priority_levels`` on classic
    queues (``x-max-priority``), 1 on quorum queues (RabbitMQ 3.10 ignores priorities there).
    The gateway refuses a submission's priority at or above it, rather than ignore it."""
    return settings.priority_levels if settings.queue_type == "classic" else 1


CONTROL_STREAM_ARGS = (
    # Fixed, so that no setting change makes the declaration inequivalent: readers choose how
    # far back to start (``cancellation_retention_seconds``, at most this age). Small segments,
    # because retention drops whole segments only.
    ("x-max-age", "7D"),
    ("x-queue-type", "stream"),
    ("x-stream-max-segment-size-bytes", 1_000_000),
)


def build(settings: Settings, queues: Iterable[str], *, passive: bool | None = None) -> Topology:
    """The topology serving ``queues`` (task queue names, e.g. ``diag``); declared passively
    when ``declare_topology`` is off (``passive`` overrides: ``warren topology apply``)."""
    names = Names(settings.namespace)
    served = tuple(sorted(set(queues)))
    tiers = settings.retry_tiers_seconds
    exchanges = (
        ExchangeSpec(names.work_exchange, "direct"),
        ExchangeSpec(names.retry_exchange, "direct"),
        ExchangeSpec(names.dead_exchange, "direct"),
        ExchangeSpec(names.events_exchange, "topic"),
        ExchangeSpec(names.control_exchange, "fanout"),
        *(ExchangeSpec(names.delay_exchange(k), "topic") for k in range(DELAY_LEVELS)),
        ExchangeSpec(names.delay_due, "topic"),
    )
    queue_specs: list[QueueSpec] = [
        QueueSpec(names.recorder_queue, _queue_args(settings)),
        QueueSpec(names.control_stream, CONTROL_STREAM_ARGS),
        # One token that the active consumer holds; at most one more waits (drop-head).
        QueueSpec(
            names.scheduler_leader,
            (
                ("x-max-length", 1),
                ("x-queue-type", settings.queue_type),
                ("x-single-active-consumer", True),
            ),
        ),
    ]
    bindings: list[BindingSpec] = [
        BindingSpec(names.events_exchange, names.recorder_queue, "#"),
        BindingSpec(names.control_exchange, names.control_stream, ""),
    ]
    _delay_ladder(settings, names, served, queue_specs, bindings)
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
        if (levels := honoured_priorities(settings)) > 1:
            work["x-max-priority"] = levels - 1
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
    if passive is None:
        passive = not settings.declare_topology
    shape = Topology(names, served, tiers, exchanges, tuple(queue_specs), tuple(bindings))
    return replace(shape, passive=passive)


def _digit(level: int, digit: str, tail: str = "#") -> str:
    """The topic pattern matching delay keys whose digit of ``level`` is ``digit``."""
    return ".".join([*("*" * (DELAY_LEVELS - 1 - level)), digit, tail])


def _delay_ladder(
    settings: Settings,
    names: Names,
    served: tuple[str, ...],
    queues: list[QueueSpec],
    bindings: list[BindingSpec],
) -> None:
    """Add the ladder's TTL queues and bindings (see the module's docstring)."""
    for k in range(DELAY_LEVELS):
        below = names.delay_exchange(k - 1) if k else names.delay_due
        ttl = {"x-message-ttl": 2**k * 1000, "x-dead-letter-exchange": below}
        queues.append(QueueSpec(names.delay_queue(k), _queue_args(settings, **ttl)))
        bindings.append(BindingSpec(names.delay_exchange(k), names.delay_queue(k), _digit(k, "1")))
        bindings.append(BindingSpec(names.delay_exchange(k), below, _digit(k, "0"), True))
    due = "*." * DELAY_LEVELS  # exactly the 22 digits, then the tail
    for q in served:
        bindings.append(BindingSpec(names.delay_due, names.work_queue(q), due + q))
    queues.append(QueueSpec(names.control_relay, _queue_args(settings)))
    bindings.append(BindingSpec(names.delay_due, names.control_relay, due + CONTROL_DELAY_TAIL))


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


# --- broker permissions -------------------------------------------------------------

Role = Literal["gateway", "consumer", "scheduler", "deploy"]
DEFAULT_EXCHANGE = "amq.default"
"""The name RabbitMQ checks permissions on for the default (nameless) exchange."""


@dataclass(frozen=True)
class Permissions:
    """RabbitMQ's three regexes on a vhost, matched against exchange and queue names.

    ``configure``: declare (non-passively) and delete; ``write``: publish to an exchange,
    bind to a queue; ``read``: consume, get or purge a queue, bind from an exchange.
    Passive declares need none of them, so users without ``configure`` run with
    ``declare_topology`` off.
    """

    configure: str
    write: str
    read: str


def _exactly(names: Iterable[str]) -> str:
    """A regex matching these names and nothing else (``^$``: nothing at all)."""
    alternatives = "|".join(re.escape(n) for n in sorted(set(names)))
    return f"^(?:{alternatives})$" if alternatives else "^$"


def permissions(names: Names, role: Role, queues: Iterable[str] = ()) -> Permissions:
    """The least a role needs, derived from the same names the topology is built from.

    * ``gateway``: publish tasks (now, onto the delay ladder, and replays) and cancellations;
      consume the recorder queue, the delayed cancellations it relays, and the dead-letter
      queues (the keeper moves dead letters into the store).
    * ``consumer`` of ``queues``: consume its work queues and the control stream; publish
      retries, dead letters, lifecycle events and the ``sync`` marker of the control stream.
    * ``scheduler``: consume the leader queue; publish each tick's task to the work exchange
      and the leader token back to its queue (through the default exchange, whose
      permission RabbitMQ checks by exchange only: see the README's Deploying).
    * ``deploy``: declare, bind and delete everything in the namespace (``warren topology
      apply``); binding needs ``write`` on the queue and ``read`` on the exchange.
    """
    if role == "gateway":
        # Every queue's dead letters, whatever app queues a gateway serves: its keeper moves
        # them into the store (queue names: ``contracts.QUEUE_NAME``).
        dead = f"{re.escape(names.namespace)}\\.[a-z][a-z0-9_-]*\\.dead"
        return Permissions(
            "^$",
            _exactly([names.work_exchange, names.control_exchange, names.delay_entry]),
            f"^(?:{re.escape(names.recorder_queue)}|{re.escape(names.control_relay)}|{dead})$",
        )
    if role == "scheduler":
        return Permissions(
            "^$",
            _exactly([names.work_exchange, DEFAULT_EXCHANGE]),
            _exactly([names.scheduler_leader]),
        )
    if role == "consumer":
        served = list(queues)
        if not served:
            raise ValueError("a consumer's permissions need the queues it consumes")
        exchanges = [names.retry_exchange, names.dead_exchange, names.events_exchange]
        return Permissions(
            "^$",
            _exactly([*exchanges, names.control_exchange]),
            _exactly([*(names.work_queue(q) for q in served), names.control_stream]),
        )
    everything = f"^{re.escape(names.namespace)}\\..+"
    return Permissions(everything, everything, everything)
