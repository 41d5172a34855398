"""What a drain costs, measured honestly: events (not messages), CPU and broker work per task.

* ``EventCounter`` reads every message of ``<ns>.events`` on a queue of the
  benchmark's own and counts it twice: as one message (one publish, one
  confirm, one persistent enqueue in the recorder's durable queue) and as the
  events it carries (``warren-events``; 1 for a single event). A drain is done
  when the ``succeeded`` *events* reach N, whatever their packing.
* ``CpuClock`` reads the CPU time (user + system) of the consumer processes
  from ``/proc/<pid>/stat`` when the window opens and when it closes, so
  process start-up (imports, connecting) is never in the per-task figure.
* ``listening_pid`` finds the broker's process when it runs on this machine,
  so its CPU over the window is measured the same way.
* ``ack_frames`` reads the ack frames a consumer sent from the summary line it
  logs when it stops (``warren.consumers.settle``): the broker's side of that
  count needs the management plugin, which this machine does not have.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import aiohttp
from aiormq.abc import DeliveredMessage

from warren.service.bench.broker import BenchBroker
from warren.service.bench.report import Target
from warren.service.topology import Names
from warren.service.wire import events_in

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
SUMMARY = re.compile(r"settled (\d+) deliveries with (\d+) ack frames")


class EventCounter:
    """Messages and events on ``<ns>.events`` since the last ``reset``, by status."""

    def __init__(self) -> None:
        self.messages = 0
        self.events: Counter[str] = Counter()

    async def start(self, broker: BenchBroker, names: Names) -> str:
        """Bind an exclusive queue (in memory, cheap for the broker) with ``#``; consume it.

        Raw aiormq, no acks: the benchmark's own process shares the cores with
        what it measures, and aio-pika's message objects would cost it more.
        """
        channel = await broker.connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(names.events_exchange, "#")
        raw = await channel.get_underlay_channel()
        await raw.basic_consume(queue.name, self._on_message, no_ack=True)
        return queue.name

    async def _on_message(self, message: DeliveredMessage) -> None:
        self.messages += 1
        status = (message.routing_key or "").rsplit(".", 1)[-1]
        self.events[status] += events_in(message.header.properties.headers)

    def reset(self) -> None:
        self.messages = 0
        self.events.clear()


class CpuClock:
    """CPU seconds the given processes used between ``start`` and ``stop``."""

    def __init__(self, pids: Sequence[int]) -> None:
        self._pids = list(pids)
        self._started = 0.0
        self.seconds = float("nan")

    def start(self) -> None:
        self._started = self._now()

    def stop(self) -> float:
        self.seconds = self._now() - self._started
        return self.seconds

    def _now(self) -> float:
        return sum(cpu_seconds(pid) for pid in self._pids)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process, threads included (NaN where /proc is missing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime: fields 14 and 15


def listening_pid(port: int) -> int | None:
    """The local process listening on TCP ``port`` (the broker, when it runs here), from
    ``/proc``: its socket's inode in ``/proc/net/tcp*``, then whose fd points at it. None
    when it is elsewhere or not ours to see."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    for proc in Path("/proc").iterdir() if inodes else ():
        if proc.name.isdigit() and _holds(proc, inodes):
            return int(proc.name)
    return None


def _holds(proc: Path, inodes: set[str]) -> bool:
    with contextlib.suppress(OSError):
        return any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir())
    return False


def ack_frames(logs: Sequence[Path]) -> float:
    """Ack frames the consumers logged at their stop (NaN if one did not say)."""
    total = 0
    for log in logs:
        found = SUMMARY.findall(log.read_text(errors="replace")) if log.exists() else []
        if not found:
            return float("nan")
        total += int(found[-1][1])
    return float(total)


def broker_work_targets(extra: dict[str, float]) -> list[Target]:
    """The issue's bounds on broker work per task during the drain, for what was measured.

    Each event message is one publish, one confirm and one persistent enqueue
    (the recorder's durable queue), so one bound covers the three.
    """
    bounds = [
        ("event publishes (= confirms) per task", "event_msgs_per_task", 0.05),
        ("persistent enqueues per task", "enqueues_per_task", 0.05),
        ("ack frames per task", "ack_frames_per_task", 0.1),
    ]
    return [
        Target(name, extra[key], limit, "<=")
        for name, key, limit in bounds
        if key in extra and extra[key] == extra[key]  # measured, not NaN
    ]


class Backlog:
    """Largest number of events waiting in the recorder queue."""

    def __init__(self) -> None:
        self.max = 0

    def sample(self, ready: int) -> None:
        self.max = max(self.max, ready)


async def store_lag(base: str, task_ids: Sequence[str], since: float, within: float) -> float:
    """Seconds from the last succeeded event until the store shows the last tasks succeeded."""
    deadline = time.monotonic() + within
    pending = list(task_ids)
    async with aiohttp.ClientSession() as http:
        while pending:
            if time.monotonic() > deadline:
                return float("nan")
            async with http.get(f"{base}/v1/tasks/{pending[0]}") as response:
                status = (await response.json())["status"] if response.status == 200 else None
            if status == "succeeded":
                pending.pop(0)
            else:
                await asyncio.sleep(0.01)
    return max(0.0, time.time() - since)
