"""``warren bench gateway``: closed-loop load on ``POST /v1/tasks`` for a fixed time.

Variants (all started at once, then measured in turn, repeat by repeat):

* ``baseline`` — the minimal aiohttp + aio-pika app: validate with pydantic,
  publish persistent + mandatory with an awaited confirm on one shared
  channel, answer 202 (``warren.service.bench.baselines``).
* ``warren`` — ``warren gateway`` as deployed (tracing sampled at its default
  ratio, not exported; every submission also recorded in the task store).
* ``warren-notrace`` — sampled at 0 %; ``warren-otlp`` — at 100 %, exported
  over OTLP/HTTP to a local sink.
* ``warren-pg`` — one process on the PostgreSQL store (``--postgres-url``, a
  schema of its own); ``warren-2w`` — the same with two worker processes on
  the port (``http_workers=2``, which needs PostgreSQL): the pair separates
  the store's effect from the workers'.
* ``raw-windowed``, ``warren-batch`` — ``POST /v1/tasks/batch`` against aio-pika's
  windowed publish (``warren.service.bench.batch``).
* with ``--tree-b DIR``: ``warren-b`` (``warren`` of another checkout) and, when
  ``warren-batch`` runs, ``warren-batch-b`` (that checkout's batch route), in turn
  with the others: a before/after in one run.

Load comes from wrk (one thread) when installed, else from an aiohttp client
process (``warren.service.bench.load``); the same generator drives every variant.
Messages pile up in queues nobody consumes; they are purged between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from warren.service.bench import load
from warren.service.bench.batch import BATCH_VARIANTS, TREE_B, batch_body, raw_windowed
from warren.service.bench.common import BenchRun, bench_run
from warren.service.bench.drain import CpuClock
from warren.service.bench.procs import Proc, free_port, wait_http, warren_env
from warren.service.bench.report import Progress, Report, Row, Target, ratio

VARIANTS = (
    "baseline",
    "warren",
    "warren-notrace",
    "warren-otlp",
    "warren-pg",
    "warren-2w",
    "raw-windowed",
    "warren-batch",
)
POSTGRES_VARIANTS = {"warren-pg": 1, "warren-2w": 2}  # variant: gateway worker processes
BODY = b'{"type":"diag.echo","payload":{"message":"bench"}}'
BASELINE_KEY = "bench.baseline"
METRICS = {  # variant: (what is measured, unit) when not POST /v1/tasks in req/s
    "raw-windowed": ("confirmed publishes, aio-pika", "tasks/s"),
    "warren-batch": ("POST /v1/tasks/batch", "tasks/s"),
    TREE_B: ("POST /v1/tasks/batch, tree b", "tasks/s"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--duration", type=float, default=5.0, help="seconds measured per run")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of load before measuring")
    p.add_argument("--connections", type=int, default=32, help="concurrent HTTP connections")
    p.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    p.add_argument(
        "--rate",
        type=float,
        help="open loop at this many requests/s instead (the Python generator): compares CPU "
        "per request at one rate, which a loaded machine disturbs less than a maximum",
    )
    p.add_argument("--batch-size", type=int, default=500, help="tasks per batch (and window)")
    p.add_argument("--batch-connections", type=int, default=4, help="connections posting batches")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset")
    p.add_argument(
        "--postgres-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL of the warren-pg and warren-2w variants (a schema per variant)",
    )
    p.add_argument(
        "--tree-b",
        type=Path,
        help="another checkout of Warren (e.g. `git archive COMMIT | tar -x -C DIR`): adds the "
        f"variants warren-b and {TREE_B}, `warren` and its batch route run from that tree, in "
        "turn with the others (a before/after in one run)",
    )


@dataclass(frozen=True)
class LoadSpec:
    """How one run loads its target."""

    generator: str  # "wrk" or "python"
    duration: float
    warmup: float
    connections: int
    batch_size: int = 500
    batch_connections: int = 4
    rate: float | None = None  # open loop at this rate (requests/s)


def load_spec(args: argparse.Namespace) -> LoadSpec:
    generator = args.loadgen
    if args.rate:
        return LoadSpec("python", args.duration, args.warmup, args.connections, rate=args.rate)
    if generator == "auto":
        generator = "wrk" if load.wrk_available() else "python"
    elif generator == "wrk" and not load.wrk_available():
        raise SystemExit("wrk is not installed (apt-get install wrk), try --loadgen python")
    return LoadSpec(generator, args.duration, args.warmup, args.connections)


async def measure(
    run_: BenchRun, variant: str, url: str, spec: LoadSpec, label: str, pid: int | None = None
) -> dict[str, Any]:
    """One run of ``variant``; its ``rps`` is tasks per second (for a batch, requests/s
    times the batch size). ``pid``: the target's one process, whose CPU is measured too."""
    if variant == "raw-windowed":
        return await raw_windowed(run_, spec.duration, spec.warmup, spec.batch_size)
    if variant not in ("warren-batch", TREE_B):
        return await cpu_timed(run_, url, spec, label, pid)
    result = await drive(
        run_, url, spec, label, batch_body(spec.batch_size), spec.batch_connections
    )
    return {**result, "rps": result["rps"] * spec.batch_size}


async def cpu_timed(
    run_: BenchRun, url: str, spec: LoadSpec, label: str, pid: int | None
) -> dict[str, Any]:
    """A closed-loop run and the target's CPU per answered request (``cpu_us``): a figure
    that other load on the machine disturbs less than the rate. The warm-up runs apart,
    so the clock covers the measured window only."""
    if pid is None:
        return await drive(run_, url, spec, label)
    if spec.warmup > 0:
        await drive(run_, url, replace(spec, duration=spec.warmup, warmup=0), f"{label}-warm")
    clock = CpuClock([pid])
    clock.start()
    result = await drive(run_, url, replace(spec, warmup=0), label)
    answered = result["requests"] + result["errors"]
    return {**result, "cpu_us": clock.stop() / answered * 1e6 if answered else float("nan")}


async def drive(
    run_: BenchRun,
    url: str,
    spec: LoadSpec,
    label: str,
    body: bytes = BODY,
    connections: int | None = None,
) -> dict[str, Any]:
    """One closed-loop run against ``url``; counts, req/s and latency percentiles (ms)."""
    connections = connections or spec.connections
    if spec.generator == "wrk":
        return await asyncio.to_thread(
            load.run_wrk, url, body, spec.duration, connections, spec.warmup
        )
    args = ["--url", url, "--body", body.decode(), "--duration", str(spec.duration)]
    args += ["--connections", str(connections), "--warmup", str(spec.warmup)]
    if spec.rate and body is BODY:
        args += ["--rate", str(spec.rate)]
    proc = Proc.module("warren.service.bench.load", args, run_.log(f"load-{label}"))
    return await proc.report_async(timeout=spec.duration + spec.warmup + 60)


async def run(args: argparse.Namespace, progress: Progress | None = None) -> Report:
    variants = [v for v in args.variants.split(",") if v]
    tree_variants = _tree_b_variants(variants) if args.tree_b is not None else []
    variants += [v for v in tree_variants if v not in variants]
    if unknown := set(variants) - {*VARIANTS, *tree_variants}:
        raise SystemExit(f"unknown variants: {', '.join(sorted(unknown))}")
    spec = replace(
        load_spec(args), batch_size=args.batch_size, batch_connections=args.batch_connections
    )
    progress = progress or Progress("gateway", len(variants) * args.repeats, not args.quiet)
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    async with (
        bench_run(keep_logs=args.keep_logs) as run_,
        _schemas(args.postgres_url, run_, variants) as stores,
    ):
        urls, pids = await _start_targets(run_, variants, stores, args.tree_b)
        for repeat in range(args.repeats):
            for variant in variants:
                progress.start(f"{variant} #{repeat + 1}")
                await run_.broker.purge(*_queues(run_, variants))
                label = f"{variant}-{repeat}"
                url, pid = urls.get(variant, ""), pids.get(variant)
                result = await measure(run_, variant, url, spec, label, pid)
                results[variant].append(result)
                progress.finish(f"{variant} {result['rps']:,.0f}/s")
        progress.close()
        await run_.broker.purge(*_queues(run_, variants))
        settings = {**vars(spec), "repeats": args.repeats, "tree_b": str(args.tree_b or "")}
        report = run_.report("gateway", settings)
    _summarise(report, results, spec.rate)
    return report


def _queues(run_: BenchRun, variants: list[str]) -> list[str]:
    """The queues a run fills: Warren's work queue, and the baseline's own if it runs."""
    baseline = [f"{run_.settings.namespace}.bench.baseline"] if "baseline" in variants else []
    return [run_.names.work_queue("diag"), *baseline]


@contextlib.asynccontextmanager
async def _schemas(url: str, run_: BenchRun, variants: list[str]) -> AsyncIterator[dict[str, str]]:
    """A PostgreSQL schema per variant that needs one (its store URL), dropped at the end."""
    wanted = [v for v in variants if v in POSTGRES_VARIANTS]
    if not wanted:
        yield {}
        return
    import asyncpg

    admin = await asyncpg.connect(url)
    schemas = {v: f"{run_.settings.namespace}_{v}".replace("-", "_") for v in wanted}
    try:
        for schema in schemas.values():
            await admin.execute(f'CREATE SCHEMA "{schema}"')
        separator = "&" if "?" in url else "?"
        yield {v: f"{url}{separator}search_path={schema}" for v, schema in schemas.items()}
    finally:
        for schema in schemas.values():
            await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


async def _start_targets(
    run_: BenchRun, variants: list[str], stores: dict[str, str], tree_b: Path | None = None
) -> tuple[dict[str, str], dict[str, int]]:
    """Start every variant's server (``warren-b``: ``warren`` of ``tree_b``); their URLs
    of ``POST /v1/tasks``, and the process ids of those that are one process."""
    procs: dict[str, Proc] = {}
    ports: dict[str, int] = {}
    sink = None
    if "warren-otlp" in variants:
        port = free_port()
        args = ["sink", "--port", str(port)]
        sink = run_.start(Proc.module("warren.service.bench.baselines", args, run_.log("sink")))
        await wait_http(f"http://127.0.0.1:{port}/readyz", [sink])
        sink_url = f"http://127.0.0.1:{port}"
    for variant in variants:
        if variant == "raw-windowed":
            continue  # the driver publishes itself
        ports[variant] = port = free_port()
        if variant == "baseline":
            procs[variant] = await _start_baseline(run_, port)
            continue
        overrides: dict[str, Any] = {"store_url": stores.get(variant, run_.store_url(variant))}
        if variant in POSTGRES_VARIANTS:
            overrides["http_workers"] = POSTGRES_VARIANTS[variant]
            overrides["http_port"] = port  # the workers' supervisor passes it on
        if variant == "warren-notrace":
            overrides["otel_sampling_ratio"] = 0.0
        if variant == "warren-otlp":
            overrides["otel_endpoint"] = sink_url
        env = warren_env(run_.settings, **overrides)
        args = ["gateway", "--port", str(port)]
        tree = tree_b if variant in ("warren-b", TREE_B) else None
        procs[variant] = run_.start(Proc.warren(args, run_.log(variant), env, tree))
    for variant, proc in procs.items():
        await wait_http(f"http://127.0.0.1:{ports[variant]}/readyz", [proc])
    urls = {
        v: f"http://127.0.0.1:{p}/v1/tasks{'/batch' if v in BATCH_VARIANTS else ''}"
        for v, p in ports.items()
    }
    return urls, {v: p.pid for v, p in procs.items() if POSTGRES_VARIANTS.get(v, 1) == 1}


async def _start_baseline(run_: BenchRun, port: int) -> Proc:
    """The minimal app publishes to Warren's work exchange, into a queue of its own."""
    queue = f"{run_.settings.namespace}.bench.baseline"
    names = run_.names
    await run_.broker.declare_queue(queue, (names.work_exchange, BASELINE_KEY))
    run_.extra_queues.append(queue)
    args = ["app", "--url", run_.settings.broker_url, "--port", str(port)]
    args += ["--exchange", names.work_exchange, "--routing-key", BASELINE_KEY]
    return run_.start(Proc.module("warren.service.bench.baselines", args, run_.log("baseline")))


def _summarise(
    report: Report, results: dict[str, list[dict[str, Any]]], rate: float | None = None
) -> None:
    for variant, runs in results.items():
        metric, unit = METRICS.get(variant, ("POST /v1/tasks", "req/s"))
        row = Row(variant, metric, unit, [r["rps"] for r in runs])
        row.extra = {
            "p50_ms": Row("", "", "", [r["p50_ms"] for r in runs]).value,
            "p99_ms": Row("", "", "", [r["p99_ms"] for r in runs]).value,
            "errors": float(sum(r["errors"] for r in runs)),
        }
        if runs and all("cpu_us" in r for r in runs):
            row.extra["cpu_us_per_req"] = Row("", "", "", [r["cpu_us"] for r in runs]).value
        report.rows.append(row)
    baseline, raw = report.row("baseline"), report.row("raw-windowed")
    for row in report.rows:
        base = raw if row.name in BATCH_VARIANTS else baseline
        if base is not None and row is not base:
            row.ratio = ratio(row.value, base.value)
    _batch_targets(report)
    if rate:  # every variant served the same rate: compare CPU per request instead
        _cpu_ratios(report)
    else:
        _targets(report)


def _tree_b_variants(variants: list[str]) -> list[str]:
    """What ``--tree-b`` adds: the other tree's batch route if the batch runs, its single
    route if ``warren`` runs or the batch does not."""
    added = [TREE_B] if "warren-batch" in variants else []
    if "warren" in variants or not added:
        added.insert(0, "warren-b")
    return added


def _batch_targets(report: Report) -> None:
    """The issue's target for the batch route; with tree b, after / before in this run."""
    batch = report.row("warren-batch")
    if batch is not None and batch.ratio is not None:
        report.targets.append(Target("warren batch / raw windowed publish", batch.ratio, 1.0, ">="))
    before = report.row(TREE_B)
    if batch is not None and before is not None and before.value > 0:
        report.notes.append(f"warren-batch / {TREE_B} (same run): {batch.value / before.value:.2f}")


def _cpu_ratios(report: Report) -> None:
    """At one rate the ratio is the baseline's CPU per request over the variant's."""
    baseline = report.row("baseline")
    cpu = baseline.extra.get("cpu_us_per_req") if baseline is not None else None
    for row in report.rows:
        mine = row.extra.get("cpu_us_per_req")
        row.ratio = cpu / mine if cpu and mine and row is not baseline else None
    report.notes.append("open loop at one rate: ratio = baseline CPU per request / variant's")
    warren, other = report.row("warren"), report.row("warren-b")
    if warren is not None and other is not None and other.extra.get("cpu_us_per_req"):
        mine = warren.extra["cpu_us_per_req"] / other.extra["cpu_us_per_req"]
        report.notes.append(f"CPU per request, warren / warren-b (tree b, same run): {mine:.2f}")


def _targets(report: Report) -> None:
    """The gateway's targets and notes, from the rows of one run."""
    warren = report.row("warren")
    if warren is not None and warren.ratio is not None:
        report.targets.append(Target("warren / minimal confirm app", warren.ratio, 0.90, ">="))
    workers = report.row("warren-2w")
    if workers is not None and workers.ratio is not None:
        report.targets.append(
            Target("warren, 2 workers / minimal confirm app", workers.ratio, 0.90, ">=")
        )
    if warren is not None and (other := report.row("warren-b")) is not None and other.value > 0:
        report.notes.append(
            f"warren / warren-b (tree b, same run): {warren.value / other.value:.2f}"
        )
    off, otlp = report.row("warren-notrace"), report.row("warren-otlp")
    if off is not None and otlp is not None and off.value > 0:
        report.targets.append(
            Target("tracing cost (otlp vs off)", 1 - otlp.value / off.value, 0.15, "<=")
        )
    if off is not None and warren is not None and off.value > 0:
        report.notes.append(
            f"tracing sampled but not exported costs {1 - warren.value / off.value:.1%}"
        )
    if any(r.extra.get("errors") for r in report.rows):
        report.notes.append("some requests failed (non-2xx or socket errors): see errors=")
