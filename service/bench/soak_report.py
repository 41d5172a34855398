"""The soak's verdict and report: rates, each process's RSS and its growth, the store.

The checks that make ``warren bench soak`` exit non-zero are its targets:
every task succeeded, and each process's RSS growth within the bound.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

from warren.service.bench.common import BenchRun
from warren.service.bench.report import Report, Row, Target
from warren.service.bench.soak_probe import MIB, Samples, thinned
from warren.service.bench.soak_submit import Submitted

WARM_FRACTION = 0.1  # RSS growth counts from the sample after this share of tasks succeeded


@dataclass(frozen=True)
class Figures:
    """What a soak found, before it becomes a report."""

    samples: Samples
    submitted: Submitted
    drained: float  # wall clock: the last ``succeeded`` event arrived
    settled: float  # wall clock: the API lists none of the run's tasks as not final
    verified: float  # wall clock: the paging through the API started
    succeeded: int  # accepted ids the API lists ``succeeded``
    others: int  # the run's tasks the API lists dead or cancelled


def passed(report: Report) -> bool:
    """Every task succeeded and no process grew past its bound: the soak's exit status."""
    return all(target.met for target in report.targets)


def _settings(args: argparse.Namespace, **more: Any) -> dict[str, Any]:
    keys = ["tasks", "batch", "in_flight", "consumers", "concurrency", "sample_seconds"]
    keys += ["max_backlog", "rss_growth_mib"]
    return {key: getattr(args, key) for key in keys} | more


def _summarise(report: Report, f: Figures, args: argparse.Namespace) -> None:
    accepted, sub = len(f.submitted.ids), f.submitted
    elapsed = f.drained - f.samples.started
    missing = float(args.tasks - f.succeeded + f.others)
    paused = round(sub.paused_seconds)
    report.rows += [
        _row("submit", "accepted", "tasks/s", accepted / max(sub.seconds, 1e-9), accepted=accepted),
        _row("pipeline", "submitted → succeeded", "tasks/s", accepted / max(elapsed, 1e-9)),
        *_memory(report, f.samples, args.rss_growth_mib, int(accepted * WARM_FRACTION)),
        *_store(f),
        _row("tasks", "not succeeded", "tasks", missing),
    ]
    report.rows[0].extra |= {"refused": sub.refused, "failed_requests": sub.failed_requests}
    report.rows[0].extra["paused_s"] = paused
    report.rows[1].extra["seconds"] = round(elapsed, 1)
    report.targets.insert(0, Target("tasks not succeeded", missing, 0.0, "<="))
    report.notes.append(f"the task API was paged in {time.time() - f.verified:,.1f} s")


def _row(name: str, metric: str, unit: str, value: float, **extra: Any) -> Row:
    return Row(name, metric, unit, [value], extra=extra)


def _memory(report: Report, samples: Samples, bound: float, warm_after: int) -> list[Row]:
    """One row per process (first, max, last RSS and its growth), a bound on each growth."""
    rows = []
    for label in samples.labels():
        series = [v / MIB for v in samples.series(label)]
        growth = samples.growth(label, warm_after)
        first, top = series[0], max(series)
        rows.append(_row(label, "RSS last", "MiB", series[-1], first=first, max=top, growth=growth))
        report.targets.append(Target(f"RSS growth of {label} (MiB)", growth, bound, "<="))
        shown = " ".join(f"{v:.0f}" for v in thinned(series))
        report.notes.append(f"RSS of {label} over the run (MiB): {shown}")
    return rows


def _store(f: Figures) -> list[Row]:
    """Its size, how far behind it was while the tasks ran, and its lag at the end."""
    items = f.samples.items
    size = items[-1].store_bytes if items else 0
    behind = [s.store_behind_s for s in items if s.store_behind_s == s.store_behind_s]
    waiting = float(max((s.recorder_ready for s in items), default=0))
    per_task = round(size / max(len(f.submitted.ids), 1))
    return [
        _row("store", "size", "MiB", size / MIB, bytes_per_task=per_task),
        _row("store", "behind now, max sampled", "s", max(behind, default=float("nan"))),
        _row("store", "lag after the last event", "s", max(0.0, f.settled - f.drained)),
        _row("recorder queue", "most waiting", "messages", waiting),
    ]


def report_of(
    run_: BenchRun, args: argparse.Namespace, figures: Figures, stragglers: int
) -> Report:
    store_name = "sqlite (the run's own file)" if args.store_url is None else "--store-url"
    report = run_.report("soak", _settings(args, store=store_name))
    report.notes.append(f"{stragglers} tasks were listed only after their own long-poll")
    _summarise(report, figures, args)
    return report
