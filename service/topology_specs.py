"""The topology as values: exchange, queue and binding specs, the ``Topology`` holding them,
and its export as RabbitMQ definitions (``warren topology export``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from warren.service.topology_names import Names

ExchangeKind = Literal["direct", "topic", "fanout"]


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
