"""``warren bench e2e``: submit through HTTP at half the measured maximum; submit → succeeded.

The whole pipeline runs: one ``warren gateway`` and K ``warren consume``
processes. First a closed-loop burst measures the sustainable maximum — the
lower of the accepted rate and the rate of ``succeeded`` events in the same
window — then, once the backlog is gone, an open-loop generator submits at
half of it (or ``--rate``) and each task's latency is the time from when its
request was due to when its ``succeeded`` event reached a subscriber here. The
store's lag behind those events is measured alongside (``e2e_lag``).

With ``--tree-b DIR`` a second pipeline runs ``warren`` of another checkout, in a
namespace of its own (one namespace would share the recorder queue between the
two gateways): both bursts are measured, then the paced windows alternate, A then
B, at one rate (half of this tree's maximum, or ``--rate``), so before and after
are compared at the same load in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aio_pika.abc import AbstractIncomingMessage

from warren.service.bench.common import BenchRun, bench_run, wait_consumers, wait_until
from warren.service.bench.drain import listening_pid
from warren.service.bench.e2e_lag import LagProbe, SettleWatch
from warren.service.bench.e2e_stages import STAGES, Arrival, cores, cpu_by_role, stage_percentiles
from warren.service.bench.gateway import BODY, LoadSpec, drive, load_spec
from warren.service.bench.procs import Proc, free_port, wait_http, warren_env
from warren.service.bench.report import Progress, Report, Row, Target, percentile
from warren.service.wire import event_objects

QUEUE = "diag"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--duration", type=float, default=10.0, help="seconds of paced load")
    p.add_argument("--rate", type=float, help="requests/s (default: half the measured maximum)")
    p.add_argument("--max-duration", type=float, default=3.0, help="seconds of the max burst")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    p.add_argument("-p", "--processes", type=int, default=2, help="consumer processes")
    p.add_argument("-c", "--concurrency", type=int, default=16)
    p.add_argument(
        "--tree-b",
        type=Path,
        help="also run warren-b: the pipeline of another checkout, paced in turn with this one",
    )


@dataclass
class Succeeded:
    """``succeeded`` events by task id: their arrival (wall clock) and their times."""

    at: dict[str, Arrival] = field(default_factory=dict)
    probe: LagProbe | None = None  # told of each new one, to sample the store's lag

    async def on_event(self, message: AbstractIncomingMessage) -> None:
        now = time.time()
        for event in event_objects(message.body, message.headers):  # a batch: many tasks
            if (task_id := event["task_id"]) not in self.at:
                self.at[task_id] = Arrival.of(event, now)
                if self.probe is not None:
                    self.probe.arrived(task_id, now)

    def between(self, start: float, end: float) -> int:
        return sum(1 for a in self.at.values() if start <= a.arrived < end)


@dataclass(frozen=True)
class Pipeline:
    """The running pipeline: the gateway's URL, and whose CPU to read over a paced run."""

    base: str
    pids: dict[str, list[int]]


@dataclass
class Side:
    """One pipeline of the run, ``warren`` or ``warren-b``, in its own namespace."""

    name: str
    run: BenchRun
    pipeline: Pipeline
    events: Succeeded
    maximum: float = 0.0
    samples: list[dict[str, Any]] = field(default_factory=list)


async def run(args: argparse.Namespace, progress: Progress | None = None) -> Report:
    spec = load_spec(args)
    trees: list[tuple[str, Path | None]] = [("warren", None)]
    if getattr(args, "tree_b", None) is not None:
        trees.append(("warren-b", args.tree_b))
    steps = len(trees) * (args.repeats + 1)
    progress = progress or Progress("e2e", steps, not args.quiet)
    async with contextlib.AsyncExitStack() as stack:
        sides = [await _side(stack, args, name, tree) for name, tree in trees]
        for side in sides:
            progress.start(f"{side.name} maximum")
            burst = (spec, args.max_duration, side.events)
            side.maximum = await _maximum(side.run, side.pipeline.base, *burst)
            progress.finish(f"max {side.maximum:,.0f} tasks/s")
        rate = args.rate or max(1.0, sides[0].maximum / 2)  # a tiny smoke run may see none
        for repeat in range(args.repeats):
            for side in sides:  # in turn: the same load, the machine's moods shared
                progress.start(f"{side.name} {rate:,.0f}/s #{repeat + 1}")
                await _quiet(side.run, side.events)
                sample = await _paced(side.run, side.pipeline, args, rate, side.events, repeat)
                side.samples.append(sample)
                progress.finish(f"p50 {sample['p50_ms']:.1f} ms")
        progress.close()
        settings = {**vars(spec), "repeats": args.repeats, "rate": rate}
        settings |= {"maximum": sides[0].maximum, "max_seconds": args.max_duration}
        settings |= {"processes": args.processes, "concurrency": args.concurrency}
        settings["tree_b"] = str(getattr(args, "tree_b", None) or "")
        report = sides[0].run.report("e2e", settings | {"paced_seconds": args.duration})
        for side in sides[1:]:
            report.environment[f"namespace of {side.name}"] = side.run.settings.namespace
    for side in sides:
        _summarise(report, side, rate, targets=side is sides[0])
    return report


async def _side(
    stack: contextlib.AsyncExitStack, args: argparse.Namespace, name: str, tree: Path | None
) -> Side:
    """A namespace, its pipeline (of ``tree``, else this checkout) and a subscriber."""
    run_ = await stack.enter_async_context(bench_run(keep_logs=args.keep_logs))
    pipeline = await _start_pipeline(run_, args, tree)
    events = Succeeded(probe=LagProbe(pipeline.base))
    await _listen(run_, events)
    return Side(name, run_, pipeline, events)


async def _start_pipeline(
    run_: BenchRun, args: argparse.Namespace, tree: Path | None = None
) -> Pipeline:
    port = free_port()
    env = warren_env(run_.settings, store_url=run_.store_url("e2e"))
    gateway_argv = ["gateway", "--port", str(port)]
    gateway = run_.start(Proc.warren(gateway_argv, run_.log("gateway"), env, tree))
    consume = ["consume", "--queue", QUEUE, "--concurrency", str(args.concurrency)]
    consume += ["--health-port", "0"]
    consumers = [
        run_.start(Proc.warren(consume, run_.log(f"consume-{i}"), env, tree))
        for i in range(args.processes)
    ]
    base = f"http://127.0.0.1:{port}"
    await wait_http(f"{base}/readyz", [gateway])
    work = run_.names.work_queue(QUEUE)
    await wait_consumers(run_.broker, work, args.processes, [gateway, *consumers])
    pids = {"gateway": [gateway.pid], "consumers": [c.pid for c in consumers]}
    if (broker := listening_pid(urlsplit(run_.settings.broker_url).port or 5672)) is not None:
        pids["broker"] = [broker]
    return Pipeline(base, pids)


async def _listen(run_: BenchRun, events: Succeeded) -> None:
    """An exclusive queue here, bound to every ``diag.succeeded`` event."""
    channel = await run_.broker.connection.channel()
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(run_.names.events_exchange, f"{QUEUE}.succeeded")
    await queue.consume(events.on_event, no_ack=True)


async def _maximum(
    run_: BenchRun, base: str, spec: LoadSpec, seconds: float, events: Succeeded
) -> float:
    """The lower of accepted and completed tasks per second under closed-loop load."""
    burst = LoadSpec(spec.generator, seconds, spec.warmup, spec.connections)
    started = time.time() + burst.warmup
    result = await drive(run_, f"{base}/v1/tasks", burst, "maximum")
    completed = events.between(started, started + burst.duration) / burst.duration
    return min(float(result["rps"]), completed)


async def _quiet(run_: BenchRun, events: Succeeded) -> None:
    """Wait until the backlog is gone: nothing ready, and no event for half a second."""
    work = run_.names.work_queue(QUEUE)
    seen = -1

    async def idle() -> bool:
        nonlocal seen
        count = len(events.at)
        if count != seen or (await run_.broker.state(work)).ready:
            seen = count
            await asyncio.sleep(0.5)
            return False
        return True

    await wait_until(idle, run_.procs, 300, "the backlog to drain")


async def _paced(
    run_: BenchRun,
    pipeline: Pipeline,
    args: argparse.Namespace,
    rate: float,
    events: Succeeded,
    n: int,
) -> dict[str, Any]:
    assert events.probe is not None
    since = datetime.now(UTC) - timedelta(seconds=1)  # the window's records changed after
    settle, recorder = SettleWatch(), run_.names.recorder_queue
    settle.start(pipeline.base, run_.broker, recorder, since, time.time() + args.duration)
    events.probe.start()
    try:
        http, busy, due = await _generate(run_, pipeline, args, rate, n)

        async def all_done() -> bool:
            return all(task_id in events.at for task_id in due)

        with contextlib.suppress(RuntimeError):  # what never succeeds is reported as missing
            await wait_until(all_done, run_.procs, 60, "every paced task to succeed")
        last = max((events.at[t].arrived for t in due if t in events.at), default=time.time())
        ended = await settle.lag_after(last)
    finally:
        sampled = await events.probe.stop()
        await settle.stop()
    latencies = [events.at[t].arrived - d for t, d in due.items() if t in events.at]
    return {
        **stage_percentiles(due, events.at),
        **{f"cpu {role}": busy for role, busy in busy.items()},
        **sampled,
        "store lag end": ended,
        "accepted": len(due),
        "missing": sum(1 for t in due if t not in events.at),
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies, default=float("nan")) * 1000,
        "http_p50_ms": http["p50_ms"],
        "http_p99_ms": http["p99_ms"],
        "http_errors": http["errors"],
    }


async def _generate(
    run_: BenchRun, pipeline: Pipeline, args: argparse.Namespace, rate: float, n: int
) -> tuple[dict[str, Any], dict[str, float], dict[str, float]]:
    """Run the paced generator: its HTTP figures, the cores each role used meanwhile, and
    the accepted ids with the wall-clock time each request was due."""
    ids = run_.tmp / f"ids-{n}.txt"
    argv = ["--url", f"{pipeline.base}/v1/tasks", "--body", BODY.decode()]
    argv += ["--duration", str(args.duration), "--connections", str(args.connections * 4)]
    argv += ["--rate", str(rate), "--ids-out", str(ids)]
    before, started = cpu_by_role(pipeline.pids), time.monotonic()
    proc = Proc.module("warren.service.bench.load", argv, run_.log(f"paced-{n}"))
    http = await proc.report_async(timeout=args.duration + 120)
    after, wall = cpu_by_role(pipeline.pids), time.monotonic() - started
    busy = cores({role: after[role] - before[role] for role in after}, wall)
    busy["generator"] = http.get("cpu_seconds", float("nan")) / args.duration
    return http, busy, _read_ids(ids)


def _read_ids(path: Path) -> dict[str, float]:
    pairs = (line.split() for line in path.read_text().splitlines() if line.strip())
    return {task_id: float(due) for task_id, due in pairs}


def _summarise(report: Report, side: Side, rate: float, *, targets: bool) -> None:
    samples, name = side.samples, side.name

    def row(metric: str, key: str, unit: str = "ms") -> Row:
        return Row(name, metric, unit, [float(s[key]) for s in samples])

    p50, p99 = row("submit→succeeded p50", "p50_ms"), row("submit→succeeded p99", "p99_ms")
    ratio = rate / side.maximum if side.maximum else None
    report.rows += [
        Row(name, "sustainable maximum", "tasks/s", [side.maximum]),
        Row(name, "paced rate", "req/s", [rate], ratio=ratio),
        p50,
        p99,
        row("submit→succeeded max", "max_ms"),
        row("202 p50", "http_p50_ms"),
        row("202 p99", "http_p99_ms"),
        row("tasks not succeeded", "missing", "tasks"),
    ]
    lag_rows = [  # the task API behind the events (see ``e2e_lag``)
        row("store lag p50 (sampled)", "store lag p50", "s"),
        row("store lag p99 (sampled)", "store lag p99", "s"),
        row("store lag after the last event", "store lag end", "s"),
    ]
    lag_rows[0].extra = {"samples": sum(s["store lag samples"] for s in samples)}
    lag_rows[0].extra["skipped"] = sum(s["store lag skipped"] for s in samples)
    report.rows += lag_rows
    for stage in STAGES:  # where the latency goes (see ``e2e_stages``)
        report.rows += [row(f"{stage} p50", f"{stage} p50"), row(f"{stage} p99", f"{stage} p99")]
    for key in sorted(k for k in samples[0] if k.startswith("cpu ")) if samples else ():
        report.rows.append(row(f"{key} (paced)", key, "cores"))
    if targets:
        report.targets += [
            Target("submit→succeeded p50 (ms)", p50.value, 5.0, "<="),
            Target("submit→succeeded p99 (ms)", p99.value, 25.0, "<="),
            Target("store lag (s)", max(lag_rows[1].value, lag_rows[2].value), 0.1, "<="),
        ]
    if any(s["http_errors"] for s in samples):
        report.notes.append(f"{name}: some paced requests failed (non-2xx or socket errors)")
