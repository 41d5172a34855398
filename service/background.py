"""Long-lived background tasks that cannot die silently: restarted after a crash, seen by /readyz.

A bare ``asyncio.create_task`` whose coroutine raises just stops: its
exception is kept until someone awaits it, and nobody does. That is how a
recorder writer that tripped over a closed channel once left records at
``queued`` for good while every probe said ready. Here each task is a
*loop* that is started again after any exception (with a growing pause), is
logged once per crash, and counts as unhealthy until it has run a while again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)
RESTART_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)
HEALTHY_AFTER_SECONDS = 5.0  # running this long after a restart clears the crash

Loop = Callable[[], Coroutine[Any, Any, None]]


@dataclass
class _Supervised:
    name: str
    loop: Loop
    task: asyncio.Task[None] | None = None
    crashes: int = 0
    last_crash: float | None = None


@dataclass
class Background:
    """The background loops of one process (``start``ed by name; ``close``d together)."""

    _loops: dict[str, _Supervised] = field(default_factory=dict)

    def start(self, name: str, loop: Loop) -> None:
        """Run ``loop()`` for good: returning ends it, raising restarts it."""
        supervised = _Supervised(name, loop)
        supervised.task = asyncio.create_task(self._run(supervised), name=name)
        self._loops[name] = supervised

    @property
    def healthy(self) -> bool:
        """No loop crashed in the last ``HEALTHY_AFTER_SECONDS`` (what readiness reports)."""
        now = asyncio.get_running_loop().time()
        return all(
            s.last_crash is None or now - s.last_crash > HEALTHY_AFTER_SECONDS
            for s in self._loops.values()
        )

    def crashes(self, name: str) -> int:
        return self._loops[name].crashes

    def task(self, name: str) -> asyncio.Task[None] | None:
        supervised = self._loops.get(name)
        return supervised.task if supervised else None

    async def _run(self, supervised: _Supervised) -> None:
        while True:
            try:
                await supervised.loop()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                supervised.crashes += 1
                supervised.last_crash = asyncio.get_running_loop().time()
                delay = RESTART_DELAYS[min(supervised.crashes, len(RESTART_DELAYS)) - 1]
                log.exception("%s crashed; restarting it in %ss", supervised.name, delay)
                await asyncio.sleep(delay)

    async def close(self, *names: str) -> None:
        """Cancel the named loops (all without names) and wait for them to end."""
        chosen = [s for n, s in self._loops.items() if not names or n in names]
        for supervised in chosen:
            if supervised.task is not None:
                supervised.task.cancel()
        for supervised in chosen:
            if supervised.task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await supervised.task
