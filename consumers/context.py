"""What a handler knows about the task it runs, besides its typed payload."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp

from service.settings import Settings


@dataclass
class Resources:
    """Process-wide resources handlers share; created lazily, closed when the consumer stops."""

    _http: aiohttp.ClientSession | None = field(default=None, repr=False)

    @property
    def http(self) -> aiohttp.ClientSession:
        """One HTTP client session per process (connection pooling across tasks)."""
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()


@dataclass(frozen=True)
class TaskContext:
    task_id: str
    type: str
    queue: str
    attempt: int
    max_attempts: int
    trace_id: str | None
    redelivered: bool
    worker: str
    settings: Settings
    resources: Resources
