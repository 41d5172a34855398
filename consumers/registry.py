"""Handlers attach to task contracts by name; a consumer refuses to start with one missing.

A handler is a plain function ``(payload, ctx) -> result``: ``async def`` runs
on the event loop, a plain ``def`` runs in the consumer's thread pool.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from warren.consumers.context import TaskContext
from warren.service.contracts import Catalog, TaskContract
from warren.service.errors import ConfigurationError
from warren.service.settings import BrokerSettings

P = TypeVar("P", bound=BaseModel)
HandlerFn = Callable[[P, TaskContext], Any] | Callable[[P, TaskContext], Awaitable[Any]]


@dataclass(frozen=True)
class Handler(Generic[P]):
    contract: TaskContract[P]
    fn: Callable[[P, TaskContext], Any]

    @functools.cached_property
    def is_async(self) -> bool:
        """Asked twice per attempt; ``iscoroutinefunction`` unwraps and inspects each time."""
        return inspect.iscoroutinefunction(self.fn)


def handles(contract: TaskContract[P]) -> Callable[[HandlerFn[P]], Handler[P]]:
    """Decorator: ``@handles(diag_echo)`` makes the function the handler of that contract."""

    def attach(fn: HandlerFn[P]) -> Handler[P]:
        return Handler(contract, fn)

    return attach


@dataclass(frozen=True)
class Registry:
    """The handlers a consumer can run, and the settings object they get as ``ctx.settings``
    (their app's own settings, never Warren's)."""

    handlers: tuple[Handler[Any], ...]
    settings: Any = None

    def __post_init__(self) -> None:
        names = [h.contract.name for h in self.handlers]
        if len(names) != len(set(names)):
            raise ValueError("a task type has two handlers")

    def get(self, name: str) -> Handler[Any] | None:
        return next((h for h in self.handlers if h.contract.name == name), None)

    def for_queue(self, catalog: Catalog, queue: str) -> dict[str, Handler[Any]]:
        """The handlers of every contract on ``queue``, or a loud ``ConfigurationError``."""
        contracts = catalog.for_queue(queue)
        if not contracts:
            raise ConfigurationError(f"no task type uses queue {queue!r}; known: {catalog.queues}")
        missing = [c.name for c in contracts if self.get(c.name) is None]
        if missing:
            raise ConfigurationError(f"queue {queue!r}: no handler for {', '.join(missing)}")
        return {c.name: h for c in contracts if (h := self.get(c.name)) is not None}

    def extended(self, handlers: Iterable[Handler[Any]], settings: Any = None) -> Registry:
        kept = self.settings if settings is None else settings
        return Registry((*self.handlers, *handlers), kept)


def check_timeouts(catalog: Catalog, queue: str, settings: BrokerSettings) -> None:
    """Refuse a task timeout the broker would cut short by closing our channel."""
    limit = settings.broker_consumer_timeout_seconds
    too_long = [c.name for c in catalog.for_queue(queue) if c.timeout_cap_seconds >= limit]
    if too_long:
        raise ConfigurationError(
            f"timeout caps of {', '.join(too_long)} are not below the broker's consumer "
            f"timeout ({limit}s): raise WARREN_BROKER_CONSUMER_TIMEOUT_SECONDS with the broker's"
        )
