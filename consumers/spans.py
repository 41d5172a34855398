"""Attributes of the messaging spans (OpenTelemetry conventions), the per-queue part built once.

A sampled delivery opens a ``process`` span (one not sampled gets it afterwards,
only if it fails), and its retry or dead letter a ``publish`` span; the
attributes naming the system, the operation and the destination are the same
for a whole queue, so they are built once per destination and only the task's
own ids are added per span.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=512)
def _destination(operation: str, destination: str, routing_key: str) -> tuple[tuple[str, Any], ...]:
    return (
        ("messaging.system", "rabbitmq"),
        ("messaging.operation.type", operation),
        ("messaging.destination.name", destination),
        ("messaging.rabbitmq.destination.routing_key", routing_key),
    )


def messaging_attributes(
    operation: str, destination: str, routing_key: str, task: dict[str, Any]
) -> dict[str, Any]:
    """The span attributes of one message: its destination's (cached), then ``task``'s own."""
    attributes = dict(_destination(operation, destination, routing_key))
    attributes.update(task)
    return attributes
