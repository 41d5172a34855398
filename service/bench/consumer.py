"""``warren bench consumer``: drain N pre-filled no-op tasks with K consumer processes.

Variants, interleaved repeat by repeat so that background load hits them alike:

* ``raw`` — the ceiling: raw aio-pika callback consumers with manual acks on
  a queue with the same arguments and the same messages.
* ``warren`` — ``warren consume`` with every guarantee on: handler, confirmed
  succeeded event (and a running event for a task still running after
  ``running_event_delay_seconds``, which no-op tasks never are), then ack;
  default tracing (``otel_sampling_ratio``, no exporter; the tasks arrive
  sampled at that ratio, as the gateway would send them; failures are always
  traced, and none fail here). Done when all N succeeded
  *events* are on the broker (the ack follows their confirm at once), counted
  on an exclusive, in-memory queue of the benchmark's bound to every event:
  a message of a batch counts as the events it carries.
* ``warren-notrace`` — tracing sampled at 0 % (and tasks arriving unsampled).
* ``warren-trace100`` — tracing sampled at 100 % (and tasks arriving sampled):
  what every task's span costs.
* ``warren-otlp`` — tracing sampled at 100 % and exported over OTLP/HTTP to a
  local sink: the tracing cost the issue asks for.
* ``warren-recorder`` — ``warren`` plus a gateway whose recorder writes every
  event into the task store (SQLite): how far the store falls behind at full
  load, and what the recorder costs the drain.

Besides the rate, each Warren row says what a task cost over the drain window
(``warren.service.bench.drain``): consumer CPU, event messages (each one
publish, one confirm and one persistent enqueue), persistent enqueues counted
by the broker in the recorder queue, and ack frames.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from warren.service.bench.broker import echo_envelope
from warren.service.bench.common import BenchRun, bench_run, wait_consumers, wait_until
from warren.service.bench.drain import (
    Backlog,
    CpuClock,
    EventCounter,
    ack_frames,
    broker_work_targets,
    listening_pid,
    store_lag,
)
from warren.service.bench.procs import Proc, free_port, stop_all, wait_http, warren_env
from warren.service.bench.report import Progress, Report, Row, Target, ratio

VARIANTS = (
    "raw",
    "warren",
    "warren-notrace",
    "warren-trace100",
    "warren-otlp",
    "warren-recorder",
)
QUEUE = "diag"
SETTLE_SECONDS = 0.3  # raw: after nothing is ready, prefetched deliveries are acked within this
STORE_PROBES = 20  # the last tasks pre-filled, polled in the store to see it catch up


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", "--tasks", type=int, default=5000, help="tasks per drain")
    p.add_argument("-p", "--processes", type=int, default=2, help="consumer processes")
    p.add_argument(
        "-c", "--concurrency", type=int, default=16, help="per process (default prefetch)"
    )
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset")
    p.add_argument("--timeout", type=float, default=180.0, help="bound of one drain, seconds")
    p.add_argument(
        "--tree-b",
        type=Path,
        help="another checkout of Warren (e.g. `git archive COMMIT | tar -x -C DIR`): adds the "
        "variant warren-b, `warren` run from that tree, in turn with the others (a before/after "
        "in one run)",
    )


@dataclass
class Sample:
    rate: float
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class Spec:
    tasks: int
    processes: int
    concurrency: int
    timeout: float
    tree_b: Path | None = None


@dataclass
class Drain:
    """One run's own state: its label (for log files), the benchmark's event counter, and
    the broker's process when it runs on this machine (its CPU is measured too)."""

    run: BenchRun
    counter: EventCounter
    label: str = ""
    broker_pid: int | None = None

    def clocks(self, procs: Sequence[Proc]) -> tuple[CpuClock, CpuClock]:
        """CPU clocks of the consumers and of the broker, started now."""
        consumers = CpuClock([p.pid for p in procs])
        broker = CpuClock([self.broker_pid] if self.broker_pid else [])
        consumers.start()
        broker.start()
        return consumers, broker


async def run(args: argparse.Namespace, progress: Progress | None = None) -> Report:
    variants = [v for v in args.variants.split(",") if v]
    if args.tree_b is not None and "warren-b" not in variants:
        variants.append("warren-b")
    unknown = set(variants) - {*VARIANTS, *(["warren-b"] if args.tree_b else [])}
    if unknown:
        raise SystemExit(f"unknown variants: {', '.join(sorted(unknown))}")
    spec = Spec(args.tasks, args.processes, args.concurrency, args.timeout, args.tree_b)
    progress = progress or Progress("consumer", len(variants) * args.repeats, not args.quiet)
    samples: dict[str, list[Sample]] = {v: [] for v in variants}
    async with bench_run(keep_logs=args.keep_logs) as run_:
        sink = await _start_sink(run_) if "warren-otlp" in variants else None
        port = urlsplit(run_.settings.broker_url).port or 5672
        drain = Drain(run_, EventCounter(), broker_pid=listening_pid(port))
        await drain.counter.start(run_.broker, run_.names)
        for repeat in range(args.repeats):
            for variant in variants:
                progress.start(f"{variant} #{repeat + 1}")
                drain.label = f"{variant}-{repeat}"
                sample = await _once(drain, variant, spec, sink)
                samples[variant].append(sample)
                progress.finish(f"{variant} {sample.rate:,.0f} tasks/s")
        progress.close()
        settings = {**vars(spec), "repeats": args.repeats, "tree_b": str(spec.tree_b or "")}
        report = run_.report("consumer", settings)
    _summarise(report, samples)
    return report


async def _once(drain: Drain, variant: str, spec: Spec, sink: str | None) -> Sample:
    if variant == "raw":
        return await _raw_once(drain, spec)
    return await _warren_once(drain, variant, spec, sink)


async def _start_sink(run_: BenchRun) -> str:
    port = free_port()
    sink = run_.start(
        Proc.module(
            "warren.service.bench.baselines", ["sink", "--port", str(port)], run_.log("sink")
        )
    )
    await wait_http(f"http://127.0.0.1:{port}/readyz", [sink])
    return f"http://127.0.0.1:{port}"


async def _raw_once(drain: Drain, spec: Spec) -> Sample:
    """The ceiling: K raw consumers on a queue with the work queue's arguments."""
    run_ = drain.run
    queue = f"{run_.settings.namespace}.bench.raw"
    if queue not in run_.extra_queues:
        assert run_.shape is not None
        work = next(q for q in run_.shape.queues if q.name == run_.names.work_queue(QUEUE))
        await run_.broker.channel.declare_queue(queue, durable=True, arguments=work.args)
        run_.extra_queues.append(queue)
    await run_.broker.purge(queue)
    await run_.broker.prefill("", queue, [echo_envelope() for _ in range(spec.tasks)])
    args = ["consume", "--url", run_.settings.broker_url, "--queue", queue]
    procs = [
        run_.start(
            Proc.module(
                "warren.service.bench.baselines",
                [*args, "--prefetch", str(run_.settings.prefetch_for(spec.concurrency))],
                run_.log(f"raw-{i}"),
            )
        )
        for i in range(spec.processes)
    ]
    window = await wait_consumers(run_.broker, queue, spec.processes, procs)
    cpu, broker_cpu = drain.clocks(procs)

    async def empty() -> bool:
        return (await run_.broker.state(queue)).ready == 0

    await wait_until(empty, procs, spec.timeout, f"{queue} drained")
    # Ready 0: the last deliveries are in prefetch buffers; let them be acked, then ask.
    await asyncio.sleep(SETTLE_SECONDS)
    cpu.stop()
    broker_cpu.stop()
    for proc in procs:
        proc.terminate()  # they print their report and exit
    reports = [await p.report_async(timeout=10) for p in procs]
    acked = sum(r["acked"] for r in reports)
    end = max(r["last"] for r in reports)
    per_task = 1000 / max(window.tasks, 1)
    extra = {"acked": float(acked), "cpu_ms_per_task": cpu.seconds * per_task}
    extra["broker_cpu_ms_per_task"] = broker_cpu.seconds * per_task
    return Sample(window.tasks / (end - window.start), extra)


async def _warren_once(drain: Drain, variant: str, spec: Spec, sink: str | None) -> Sample:
    run_, counter = drain.run, drain.counter
    names = run_.names
    work, recorder = names.work_queue(QUEUE), names.recorder_queue
    overrides: dict[str, Any] = {}
    ratio = run_.settings.otel_sampling_ratio
    if variant == "warren-notrace":
        overrides["otel_sampling_ratio"] = 0.0
    if variant in ("warren-otlp", "warren-trace100"):
        overrides["otel_sampling_ratio"] = 1.0
    if variant == "warren-otlp":
        overrides["otel_endpoint"] = sink
    gateway: Proc | None = None
    if variant == "warren-recorder":
        gateway, base = await _start_gateway(run_, overrides)
    await run_.broker.purge(work, recorder)
    # Sampled as the gateway would at the same ratio (a tree before runs at the same default:
    # a task arriving sampled is traced whatever the consumer's ratio).
    share = overrides.get("otel_sampling_ratio", ratio)
    envelopes = [echo_envelope(random.random() < share) for _ in range(spec.tasks)]
    await run_.broker.prefill(names.work_exchange, QUEUE, envelopes)
    counter.reset()
    procs = _start_consumers(drain, spec, overrides, spec.tree_b if variant == "warren-b" else None)
    watched = [*procs, *([gateway] if gateway else [])]
    window = await wait_consumers(run_.broker, work, spec.processes, watched)
    cpu, broker_cpu = drain.clocks(procs)
    messages = counter.messages
    done_before = counter.events["succeeded"]  # taken while the other consumers registered
    backlog = Backlog()

    async def done() -> bool:
        if gateway is not None:
            backlog.sample((await run_.broker.state(recorder)).ready)
        return counter.events["succeeded"] >= spec.tasks

    end = await wait_until(done, watched, spec.timeout, f"{spec.tasks} tasks succeeded")
    cpu.stop()
    broker_cpu.stop()
    sample = Sample(window.tasks / (end - window.start))
    per_task = 1 / max(counter.events["succeeded"] - done_before, 1)  # tasks done in the window
    sample.extra = {
        "cpu_ms_per_task": 1000 * cpu.seconds * per_task,
        "broker_cpu_ms_per_task": 1000 * broker_cpu.seconds * per_task,
        "events_per_task": sum(counter.events.values()) / spec.tasks,
        "event_msgs_per_task": (counter.messages - messages) * per_task,
    }
    if gateway is not None:
        lag = await store_lag(base, [e.id for e in envelopes[-STORE_PROBES:]], end, spec.timeout)
        sample.extra |= {"store_lag_s": lag, "max_backlog": float(backlog.max)}
        gateway.stop()
    else:  # nobody consumes the recorder queue: the broker's own count of persistent enqueues
        enqueued = (await run_.broker.state(recorder)).ready
        sample.extra["enqueues_per_task"] = enqueued / spec.tasks
    stop_all(procs)
    sample.extra["ack_frames_per_task"] = ack_frames([p.log_path for p in procs]) / spec.tasks
    left = (await run_.broker.state(work)).ready
    if left:
        raise RuntimeError(f"{left} tasks were left unacked after the drain")
    return sample


def _start_consumers(
    drain: Drain, spec: Spec, overrides: dict[str, Any], tree: Path | None
) -> list[Proc]:
    """K ``warren consume`` processes (of ``tree``, if given), each logging to a file of
    this run's own."""
    run_ = drain.run
    env = warren_env(run_.settings, **overrides)
    args = ["consume", "--queue", QUEUE, "--concurrency", str(spec.concurrency), "--health-port"]
    return [
        run_.start(Proc.warren([*args, "0"], run_.log(f"consume-{drain.label}-{i}"), env, tree))
        for i in range(spec.processes)
    ]


async def _start_gateway(run_: BenchRun, overrides: dict[str, Any]) -> tuple[Proc, str]:
    port = free_port()
    label = f"gateway-{port}"
    env = warren_env(run_.settings, store_url=run_.store_url(label), **overrides)
    proc = run_.start(Proc.warren(["gateway", "--port", str(port)], run_.log(label), env))
    base = f"http://127.0.0.1:{port}"
    await wait_http(f"{base}/readyz", [proc])
    return proc, base


def _summarise(report: Report, samples: dict[str, list[Sample]]) -> None:
    raw = samples.get("raw")
    for variant, runs in samples.items():
        row = Row(variant, "drain", "tasks/s", [s.rate for s in runs])
        if raw and variant != "raw":
            row.ratio = ratio(row.value, Row("raw", "", "", [s.rate for s in raw]).value)
        for key in runs[0].extra if runs else ():
            row.extra[key] = Row("", "", "", [s.extra[key] for s in runs]).value
        report.rows.append(row)
    warren, raw_row = report.row("warren"), report.row("raw")
    if warren and raw_row and warren.ratio is not None:
        report.targets.append(Target("warren / raw aio-pika consume", warren.ratio, 0.70, ">="))
    off = report.row("warren-notrace")
    if off and warren and off.value > 0:
        cost = 1 - warren.value / off.value
        report.targets.append(Target("tracing cost at the default ratio", cost, 0.15, "<="))
    for name, what in (("warren-trace100", "sampled at 100 %"), ("warren-otlp", "exported")):
        if off and (other_row := report.row(name)) and off.value > 0:
            report.notes.append(f"tracing {what} costs {1 - other_row.value / off.value:.1%}")
    if warren is not None:
        report.targets += broker_work_targets(warren.extra)
        if (other := report.row("warren-b")) is not None and other.value > 0:
            report.notes.append(
                f"warren / warren-b (tree b, same run): {warren.value / other.value:.2f}"
            )
