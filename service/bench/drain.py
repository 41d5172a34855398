"""What a drain costs, measured honestly: events (not messages), CPU and broker work per task.

* ``EventCounter`` reads every message of ``<ns>.events`` on a queue of the
  benchmark's own and counts it twice: as one message (one publish, one
  confirm, one persistent enqueue in the recorder's durable queue) and as the
  events it carries (``warren-events``; 1 for a single event). A drain is done
  when the ``succeeded`` *events* reach N, whatever their packing.
* ``CpuClock`` reads the CPU time (user + system) of the consumer processes
  from ``/proc/<pid>/stat`` when the window opens and when it closes, so
  process start-up (imports, connecting) is never in the per-task figure.
* ``ack_frames`` reads the ack frames a consumer sent from the summary line it
  logs when it stops (``warren.consumers.settle``): the broker's side of that
  count needs the management plugin, which this machine does not have.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

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
