"""What a task type is: its name, queue, payload model, attempts, timeout and backoff.

Contracts are plain values importable without any handler code, so the
gateway can validate submissions for queues whose handlers it never loads.
Handlers attach to a contract by name in ``warren.consumers.registry``.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter

TASK_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}\.[a-z][a-z0-9_]{0,39}$")
QUEUE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")

P = TypeVar("P", bound=BaseModel)


class Payload(BaseModel):
    """A convenient base of payload models: unknown fields are refused, values are frozen.

    Any pydantic model can be a payload; this one makes a typo in a submission a 422
    instead of a silently ignored field.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter; the delay is then rounded to a retry tier."""

    base_seconds: float = 1.0
    max_seconds: float = 3600.0
    jitter: float = 0.2

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay before attempt ``attempt + 1``, after ``attempt`` failed (1-based)."""
        raw = min(self.max_seconds, self.base_seconds * 2.0 ** max(0, attempt - 1))
        spread = (rng or random).uniform(0.0, self.jitter) if self.jitter else 0.0
        return min(self.max_seconds, raw * (1.0 + spread))


def nearest_tier(delay: float, tiers: tuple[float, ...], *, at_least: bool = False) -> float:
    """Map a wanted delay onto the retry tiers, which are the only delays the broker has.

    "Nearest" is measured on a log scale (2 s is nearer 1 s than 5 s; 16 s is
    nearer 30 s). With ``at_least`` the smallest tier not below the delay is
    taken, for a handler that said "not before X" (e.g. an HTTP Retry-After).
    """
    ordered = sorted(tiers)
    if at_least:
        return next((t for t in ordered if t >= delay), ordered[-1])
    wanted = math.log(max(delay, 1e-3))
    return min(ordered, key=lambda t: (abs(math.log(t) - wanted), t))


@dataclass(frozen=True)
class TaskContract(Generic[P]):
    """One task type. ``*_cap`` bound what a submission may ask for instead of the default."""

    name: str
    queue: str
    payload: type[P]
    description: str = ""
    max_attempts: int = 5
    max_attempts_cap: int = 25
    timeout_seconds: float = 30.0
    timeout_cap_seconds: float = 300.0
    backoff: Backoff | None = None  # None: the settings' backoff

    def __post_init__(self) -> None:
        if not TASK_NAME.match(self.name):
            raise ValueError(f"task name {self.name!r} is not 'area.action'")
        if not QUEUE_NAME.match(self.queue):
            raise ValueError(f"queue name {self.queue!r} is not a simple lowercase name")
        if not 1 <= self.max_attempts <= self.max_attempts_cap:
            raise ValueError(f"{self.name}: max_attempts must be within 1..max_attempts_cap")
        if not 0 < self.timeout_seconds <= self.timeout_cap_seconds:
            raise ValueError(f"{self.name}: timeout_seconds must be within 0..timeout_cap")

    @cached_property
    def adapter(self) -> TypeAdapter[P]:
        """Built once per contract: validation is compiled, not rebuilt per message."""
        return TypeAdapter(self.payload)

    def json_schema(self) -> dict[str, Any]:
        return self.adapter.json_schema()


@dataclass(frozen=True)
class Catalog(Mapping[str, TaskContract[Any]]):
    """The task types a deployment knows, looked up by name."""

    contracts: tuple[TaskContract[Any], ...]
    _by_name: dict[str, TaskContract[Any]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, TaskContract[Any]] = {}
        for contract in self.contracts:
            if contract.name in by_name:
                raise ValueError(f"task type {contract.name!r} is defined twice")
            by_name[contract.name] = contract
        object.__setattr__(self, "_by_name", by_name)

    def __getitem__(self, name: str) -> TaskContract[Any]:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    @property
    def queues(self) -> tuple[str, ...]:
        return tuple(sorted({c.queue for c in self.contracts}))

    def for_queue(self, queue: str) -> tuple[TaskContract[Any], ...]:
        return tuple(c for c in self.contracts if c.queue == queue)

    def extended(self, contracts: Iterable[TaskContract[Any]]) -> Catalog:
        return Catalog((*self.contracts, *contracts))
