"""Where an end-to-end latency goes: each task's path cut at the times its events carry.

A ``succeeded`` event says when the gateway built the task's envelope (``created_at``),
when its consumer started it (``started_at``) and when it ended (``at``); the benchmark
adds when the request was due and when the event reached its subscriber. All are wall
clocks of one machine, so the differences are the stages:

* ``gateway``: due → envelope built: the generator's send, the HTTP request waiting for
  the gateway's loop, reading and validation;
* ``to consumer``: envelope built → handler started: the publish, the broker's routing,
  the delivery, and the consumer's loop;
* ``handler``: started → ended;
* ``event``: ended → event at its subscriber: the event's batch, its confirm wait, the
  broker's routing.

It also tells which process used how much CPU over the paced window (in cores), and how
long each process's loop was ready to run but waited for a core (the run queue): the
other half of "where the time goes" on a shared machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from warren.service.bench.drain import cpu_seconds
from warren.service.bench.report import percentile

STAGES = ("gateway", "to consumer", "handler", "event")


@dataclass(frozen=True, slots=True)
class Arrival:
    """One ``succeeded`` event as the benchmark saw it: its arrival and its three times."""

    arrived: float  # wall clock
    created_at: str | None
    started_at: str | None
    at: str | None

    @classmethod
    def of(cls, event: Mapping[str, Any], arrived: float) -> Arrival:
        return cls(arrived, event.get("created_at"), event.get("started_at"), event.get("at"))


def _seconds(text: str | None) -> float | None:
    return datetime.fromisoformat(text).timestamp() if text else None


def stage_seconds(due: float, arrival: Arrival) -> dict[str, float] | None:
    """The four stages of one task, in seconds; None when an event lacks a time."""
    created, started, ended = map(_seconds, (arrival.created_at, arrival.started_at, arrival.at))
    if created is None or started is None or ended is None:
        return None
    cuts = (due, created, started, ended, arrival.arrived)
    return {stage: cuts[i + 1] - cuts[i] for i, stage in enumerate(STAGES)}


def stage_percentiles(
    due: Mapping[str, float], arrivals: Mapping[str, Arrival]
) -> dict[str, float]:
    """p50 and p99 of each stage over the tasks that succeeded, in ms:
    ``{"gateway p50": …, "gateway p99": …, …}``."""
    samples: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for task_id, when in due.items():
        arrival = arrivals.get(task_id)
        stages = stage_seconds(when, arrival) if arrival is not None else None
        for stage, seconds in (stages or {}).items():
            samples[stage].append(seconds)
    figures: dict[str, float] = {}
    for stage, values in samples.items():
        figures[f"{stage} p50"] = percentile(values, 50) * 1000
        figures[f"{stage} p99"] = percentile(values, 99) * 1000
    return figures


def cores(cpu_seconds: Mapping[str, float], wall_seconds: float) -> dict[str, float]:
    """CPU seconds per process over a window, as cores busy (1.0: one core all the time)."""
    if wall_seconds <= 0:
        return {name: float("nan") for name in cpu_seconds}
    return {name: seconds / wall_seconds for name, seconds in cpu_seconds.items()}


def cpu_by_role(pids: Mapping[str, Sequence[int]]) -> dict[str, float]:
    """CPU seconds used so far by each role's processes (read twice: the difference), and
    as ``<role> waiting`` the seconds their main threads (an event loop each) spent ready
    to run but waiting for a core: a loop late for that long served nothing meanwhile."""
    used = {role: sum(cpu_seconds(pid) for pid in ids) for role, ids in pids.items()}
    waited = {  # not the broker's: the BEAM's schedulers are threads of their own
        f"{role} waiting": sum(map(runqueue_seconds, ids))
        for role, ids in pids.items()
        if role != "broker"
    }
    return used | waited


def runqueue_seconds(pid: int) -> float:
    """Seconds the process's main thread waited on a run queue (``/proc/<pid>/schedstat``,
    second field, in ns); NaN where the kernel does not keep it."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return float("nan")
