"""``warren bench``: Warren's throughput and latency against baselines measured in the same run.

Modes (``warren bench MODE --help``):

* ``consumer`` — drain pre-filled no-op tasks with K consumer processes,
  against the raw aio-pika consume ceiling; tracing and recorder variants.
* ``gateway`` — closed-loop load on ``POST /v1/tasks``, against a minimal
  aiohttp + aio-pika confirm-per-request app.
* ``e2e`` — submissions through HTTP at half the measured maximum, timed
  from submission to the ``succeeded`` event.
* ``soak`` — N tasks through the batch endpoint, drained by K consumers: every
  one must succeed in the task API and every process's RSS stay flat (the one
  mode that exits non-zero when its checks fail).

Each run has its own namespace (``bench-<random>``), deletes what it declared,
stops every process it started, and prints a table (``--json``: one object)
with the ratio of each figure to its baseline, the targets, the machine and
versions. Ratios are what to compare: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from warren.service.bench.report import Report

MODES = ("consumer", "gateway", "e2e", "soak")


def parser() -> argparse.ArgumentParser:
    from warren.service.bench import consumer, e2e, gateway, soak

    p = argparse.ArgumentParser(prog="warren bench", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="mode", required=True)
    modes = (("consumer", consumer), ("gateway", gateway), ("e2e", e2e), ("soak", soak))
    for name, module in modes:
        m = sub.add_parser(name, help=(module.__doc__ or "").split("\n")[0])
        m.add_argument("-r", "--repeats", type=int, default=3, help="runs per variant (median)")
        m.add_argument("--json", action="store_true", help="print one JSON object")
        m.add_argument("--quiet", action="store_true", help="no progress bar")
        m.add_argument("--keep-logs", action="store_true", help="keep the children's logs")
        module.add_arguments(m)
    return p


async def run_mode(args: argparse.Namespace) -> Report:
    from warren.service.bench import consumer, e2e, gateway, soak

    modules = {"consumer": consumer, "gateway": gateway, "e2e": e2e, "soak": soak}
    report: Report = await modules[args.mode].run(args)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, run one mode, print the report; exit 0 even when a target is missed, except
    for ``soak``, whose checks (every task succeeded, RSS flat) are its exit status."""
    from warren.service.bench import soak

    args = parser().parse_args(argv)
    report = asyncio.run(run_mode(args))
    report.emit(args.json)
    return 1 if args.mode == "soak" and not soak.passed(report) else 0
