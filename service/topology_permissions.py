"""The least broker permissions of each role (``warren topology permissions``), derived from
the same ``Names`` the topology is built from."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from warren.service.topology_names import Names

Role = Literal["gateway", "consumer", "scheduler", "deploy"]
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
    * ``scheduler``: consume the leader queue; publish each tick's task, and the leader token
      back to its queue, to the work exchange (the token under the leader queue's name).
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
            _exactly([names.work_exchange]),
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
