"""What a handler knows about the task it runs, besides its typed payload."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp

from warren.consumers import outbound


@dataclass
class Resources:
    """Process-wide resources handlers share; created lazily, closed when the consumer stops.

    ``allow_private``: whether handlers' HTTP may reach non-public addresses
    (``warren.consumers.outbound``; off in production, on for receivers on this machine).
    ``settings``: the app's own settings object, built once per process.
    """

    allow_private: bool = False
    settings: Any = None
    _http: aiohttp.ClientSession | None = field(default=None, repr=False)

    @property
    def http(self) -> aiohttp.ClientSession:
        """One HTTP client session per process (connection pooling across tasks), which
        connects to public addresses only unless ``allow_private``."""
        if self._http is None or self._http.closed:
            self._http = outbound.client_session(self.allow_private)
        return self._http

    async def check_destination(self, url: str) -> None:
        """``Permanent`` for a URL a handler must not reach (see ``warren.consumers.outbound``)."""
        if not self.allow_private:
            await outbound.check_destination(url)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()


@dataclass(frozen=True)
class TaskContext:
    """What a handler knows besides its payload.

    ``settings`` is the app's own settings object (``App(settings=...)``; ``None`` without
    one): annotate it where it is used, ``settings: ShopSettings = ctx.settings``.
    ``resources.http`` is a shared HTTP session that reaches public addresses only.
    ``redelivered``: an earlier delivery of this attempt may have run (make handlers idempotent).
    """

    task_id: str
    type: str
    queue: str
    attempt: int
    max_attempts: int
    trace_id: str | None
    redelivered: bool
    worker: str
    settings: Any
    resources: Resources
