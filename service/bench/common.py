"""What every benchmark mode shares: its own namespace and temp dir, the broker, the clean-up,
and the clock of a drain.

A drain is timed from the moment *all* consumer processes are registered on
the queue (a passive declare shows the consumer count) to the moment the
mode's completion test passes; the tasks counted are the ones still ready at
the start. Process start-up (imports, connecting) is therefore never timed,
for Warren, the baselines and the peers alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warren.service import topology
from warren.service.bench.broker import BenchBroker, bench_namespace
from warren.service.bench.procs import Proc
from warren.service.bench.report import Report, environment
from warren.service.settings import Settings

POLL_SECONDS = 0.02  # 20 ms: under 1 % of a multi-second drain, and a light load


@dataclass
class BenchRun:
    """One ``warren bench`` invocation: settings in a fresh namespace, and what to delete."""

    settings: Settings
    broker: BenchBroker
    tmp: Path
    shape: topology.Topology | None = None
    extra_queues: list[str] = field(default_factory=list)
    procs: list[Proc] = field(default_factory=list)

    @property
    def names(self) -> topology.Names:
        return topology.Names(self.settings.namespace)

    def store_url(self, label: str) -> str:
        """A store of its own per gateway process (SQLite serves one process)."""
        return f"sqlite:///{self.tmp / f'store-{label}.db'}"

    def log(self, label: str) -> Path:
        return self.tmp / f"{label}.log"

    def start(self, proc: Proc) -> Proc:
        self.procs.append(proc)
        return proc

    def report(self, mode: str, settings: dict[str, Any]) -> Report:
        env = environment(self.broker.server_version())
        env["namespace"] = self.settings.namespace
        return Report(mode, settings=settings, environment=env)


@contextlib.asynccontextmanager
async def bench_run(keep_logs: bool = False, **overrides: Any) -> AsyncIterator[BenchRun]:
    """A namespace ``bench-<random>`` with Warren's topology; everything deleted at the end."""
    base = Settings()
    fixed = {"namespace": bench_namespace(), "health_port": 0, "log_format": "text"}
    # The load generators send no API key: authentication's own cost is not measured here.
    fixed["auth_disabled"] = True
    settings = base.model_copy(update={**fixed, **overrides})
    tmp = Path(tempfile.mkdtemp(prefix="warren-bench-"))
    broker = await BenchBroker.open(settings.broker_url)
    run = BenchRun(settings, broker, tmp)
    try:
        run.shape = await broker.declare_warren(settings)
        yield run
    finally:
        for proc in run.procs:
            proc.stop(grace=5)
        await broker.delete(run.shape, run.extra_queues)
        await broker.close()
        if keep_logs:
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class Window:
    """The timed part of a drain."""

    start: float  # wall clock: every consumer registered
    tasks: int  # ready at ``start``: the tasks drained inside the window


async def wait_consumers(
    broker: BenchBroker, queue: str, expected: int, procs: Sequence[Proc], within: float = 60.0
) -> Window:
    """Wait until ``expected`` consumers are on ``queue``; the window starts there."""
    deadline = time.monotonic() + within
    while True:
        state = await broker.state(queue)
        if state.consumers >= expected:
            return Window(time.time(), state.ready)
        _check(procs, deadline, f"{expected} consumers on {queue}")
        await asyncio.sleep(POLL_SECONDS)


async def wait_until(
    done: Callable[[], Awaitable[bool]], procs: Sequence[Proc], within: float, what: str
) -> float:
    """Poll ``done`` until true; the wall-clock time it first was."""
    deadline = time.monotonic() + within
    while not await done():
        _check(procs, deadline, what)
        await asyncio.sleep(POLL_SECONDS)
    return time.time()


def _check(procs: Sequence[Proc], deadline: float, what: str) -> None:
    for proc in procs:
        if not proc.alive():
            raise RuntimeError(f"{proc.argv[2:6]} exited while waiting for {what}:\n{proc.tail()}")
    if time.monotonic() > deadline:
        tail = procs[0].tail() if procs else ""
        raise RuntimeError(f"timed out waiting for {what}:\n{tail}")
