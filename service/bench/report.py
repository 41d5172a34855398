"""What a benchmark prints: a table of medians with ratios to the baseline, targets, and the
machine, versions and settings it ran with (``--json`` gives the same as one object).

Absolute figures on a shared machine are noise; the ratio to a baseline
measured in the same run is the figure to compare across machines.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from typing import Any, Literal, TextIO

PACKAGES = (
    "warren",
    "aio-pika",
    "aiormq",
    "pamqp",
    "aiohttp",
    "pydantic",
    "orjson",
    "uvloop",
    "opentelemetry-sdk",
)


def ratio(value: float, base: float) -> float | None:
    """``value / base``; None when the base is 0 or NaN (a drain too small to time)."""
    return value / base if base > 0 else None


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of unsorted values; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


@dataclass
class Row:
    """One measured thing: the median of its samples, and its ratio to the baseline."""

    name: str
    metric: str
    unit: str
    samples: list[float]
    ratio: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> float:
        return median(self.samples)


@dataclass
class Target:
    """A goal from the issue, checked against this run's figures."""

    name: str
    value: float
    limit: float
    op: Literal[">=", "<="]

    @property
    def met(self) -> bool:
        return self.value >= self.limit if self.op == ">=" else self.value <= self.limit


@dataclass
class Report:
    mode: str
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)

    def row(self, name: str) -> Row | None:
        return next((r for r in self.rows if r.name == name), None)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for row, raw in zip(self.rows, data["rows"], strict=True):
            raw["value"] = row.value
        for target, raw in zip(self.targets, data["targets"], strict=True):
            raw["met"] = target.met
        return data

    def render(self) -> str:
        """The summary table, targets, then where and how it ran."""
        lines = [f"warren bench {self.mode} — medians of {self.settings.get('repeats', 1)}", ""]
        lines += _table(
            ["variant", "metric", "median", "ratio", "samples", "notes"],
            [
                [
                    r.name,
                    r.metric,
                    f"{_num(r.value)} {r.unit}",
                    "" if r.ratio is None else f"{r.ratio:.2f}",
                    " ".join(_num(s) for s in r.samples),
                    ", ".join(f"{k}={_num(v)}" for k, v in r.extra.items()),
                ]
                for r in self.rows
            ],
        )
        if self.targets:
            lines += ["", "targets:"]
            for t in self.targets:
                mark = "met " if t.met else "MISS"
                lines.append(f"  [{mark}] {t.name}: {_num(t.value)} (target {t.op} {t.limit})")
        lines += ["", *[f"note: {n}" for n in self.notes]] if self.notes else []
        lines += ["", "settings: " + json.dumps(self.settings, sort_keys=True)]
        lines.append("environment: " + json.dumps(self.environment, sort_keys=True))
        return "\n".join(lines)

    def emit(self, as_json: bool, out: TextIO = sys.stdout) -> None:
        out.write((json.dumps(self.to_json(), indent=2) if as_json else self.render()) + "\n")
        out.flush()


def _num(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [
        fmt.format(*row) for row in rows
    ]


def environment(broker_version: str | None = None) -> dict[str, Any]:
    """Machine, load, Python and package versions: what a reader needs to redo the run."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "rabbitmq": broker_version,
        "packages": versions,
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return platform.processor() or "unknown"
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as info:
            kib = int(info.readline().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return round(kib / 1024 / 1024, 1)


class Progress:
    """A one-line progress bar on stderr (plain lines when stderr is not a terminal)."""

    def __init__(self, title: str, total: int, enabled: bool = True) -> None:
        self.title = title
        self.total = max(total, 1)
        self.done = 0
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.last = ""

    def start(self, label: str) -> None:
        self._draw(label)

    def finish(self, result: str) -> None:
        self.done += 1
        self.last = result
        self._draw("", newline=not self.tty)

    def _draw(self, label: str, newline: bool = False) -> None:
        if not self.enabled or (not self.tty and not newline):
            return
        width = 24
        filled = round(width * self.done / self.total)
        bar = "█" * filled + "░" * (width - filled)
        text = f"[{self.title}] {bar} {self.done}/{self.total} {label}"
        if self.last:
            text += f"  last: {self.last}"
        if self.tty:
            sys.stderr.write("\r\x1b[2K" + text[:160])
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()
