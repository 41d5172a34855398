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
long one.

This module builds the topology from settings (``build``, with the delay ladder) and is
the one place the rest of Warren imports it from; it is split by concern into
``topology_names`` (``Names``), ``topology_specs`` (the values and their definitions
export), ``topology_declare`` (declare, check, delete) and ``topology_permissions``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from warren.service.settings import Settings
from warren.service.topology_declare import (
    Declared,
    declare,
    declare_queue,
    declare_work_queue,
    delete,
)
from warren.service.topology_names import (
    CONTROL_DELAY_TAIL,
    DELAY_LEVELS,
    MAX_DELAY_SECONDS,
    Names,
    tier_label,
)
from warren.service.topology_permissions import (
    Permissions,
    Role,
    permissions,
)
from warren.service.topology_specs import (
    BindingSpec,
    ExchangeKind,
    ExchangeSpec,
    QueueSpec,
    Topology,
)

__all__ = [
    "CONTROL_DELAY_TAIL",
    "CONTROL_STREAM_ARGS",
    "DELAY_LEVELS",
    "MAX_DELAY_SECONDS",
    "BindingSpec",
    "Declared",
    "ExchangeKind",
    "ExchangeSpec",
    "Names",
    "Permissions",
    "QueueSpec",
    "Role",
    "Topology",
    "build",
    "declare",
    "declare_queue",
    "declare_work_queue",
    "delete",
    "honoured_priorities",
    "permissions",
    "tier_label",
]


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
        # The leader token goes through the work exchange under the leader queue's own name,
        # which no task's queue can route to (queue names hold no dots): the scheduler's user
        # then needs no write on the default exchange, which reaches every queue.
        BindingSpec(names.work_exchange, names.scheduler_leader, names.scheduler_leader),
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
