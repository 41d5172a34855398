"""The peer comparison: the same drain on Celery, Dramatiq, Taskiq, FastStream and Warren.

Run it with ``benchmarks/peers/run`` (it makes the peers' own venv first). This
driver runs in Warren's venv and starts each peer's enqueuer and workers with
the peers' venv (``benchmarks/peers/.venv``), so no peer is a dependency of
Warren. Per repeat, every system in turn: its own queue ``bench-peer-<name>-<hex>``,
N no-op tasks enqueued with the peer's own client (the first ``--timed`` one
at a time with confirms: the client-side enqueue rate), then the workers
start and the drain is timed from the moment all of them are registered on
the queue until nothing is left ready. Warren (and the raw aio-pika ceiling)
are measured by ``warren bench consumer`` in the same loop. Every queue and
exchange made is deleted; every process started is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from warren.service.bench.broker import BenchBroker
from warren.service.bench.common import wait_consumers, wait_until
from warren.service.bench.procs import Proc
from warren.service.bench.report import Progress, Report, Row, Target, environment, ratio
from warren.service.settings import Settings

HERE = Path(__file__).resolve().parent
PEER_BIN = HERE / ".venv" / "bin"
PEER_PACKAGES = ("celery", "kombu", "dramatiq", "pika", "taskiq", "taskiq-aio-pika", "faststream")


@dataclass(frozen=True)
class Peer:
    kind: str  # the enqueue.py client and the app module's prefix
    worker: tuple[str, ...]  # the worker command; "{queue}" is replaced
    consumers: int  # consumers the workers register on the queue once all are up
    setup: str  # the configuration, as documented in benchmarks/README.md

    def queues(self, queue: str) -> list[str]:
        extra = {"dramatiq": [".DQ", ".XQ"], "taskiq": [".dead_letter", ".delay"]}
        return [queue, *(queue + suffix for suffix in extra.get(self.kind, []))]

    def exchanges(self, queue: str) -> list[str]:
        return [queue] if self.kind in ("celery", "taskiq") else []


CELERY = ("celery", "-A", "celery_app", "worker", "-Q", "{queue}", "--loglevel", "WARNING")
CELERY_QUIET = ("--without-heartbeat", "--without-mingle", "--without-gossip")
PEERS = {
    "celery-prefork2": Peer(
        "celery",
        (*CELERY, *CELERY_QUIET, "-P", "prefork", "-c", "2"),
        1,
        "acks_late, prefork pool of 2, prefetch multiplier 4",
    ),
    "celery-threads8": Peer(
        "celery",
        (*CELERY, *CELERY_QUIET, "-P", "threads", "-c", "8"),
        1,
        "acks_late, thread pool of 8, prefetch multiplier 4",
    ),
    "dramatiq-2x8": Peer(
        "dramatiq",
        ("dramatiq", "dramatiq_app", "--processes", "2", "--threads", "8", "--queues", "{queue}"),
        2,
        "2 processes x 8 threads, ack after run, default middleware",
    ),
    "taskiq-2": Peer(
        "taskiq",
        ("taskiq", "worker", "taskiq_app:broker", "--workers", "2", "--no-configure-logging"),
        2,
        "2 worker processes, ack when_saved (after run), qos 10, classic queue",
    ),
    "faststream-2": Peer(
        "faststream",
        ("faststream", "run", "faststream_app:app", "--workers", "2"),
        2,
        "2 worker processes, AckPolicy.ACK (after run), prefetch 16",
    ),
}
ALL = (*PEERS, "warren")
# What ``warren bench consumer`` says a task cost, shown beside Warren's rate.
WARREN_COSTS = (
    "cpu_ms_per_task",
    "broker_cpu_ms_per_task",
    "event_msgs_per_task",
    "enqueues_per_task",
    "ack_frames_per_task",
)


def peer_env(url: str, queue: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARREN_", "VIRTUAL_ENV"))}
    return env | {"BENCH_URL": url, "BENCH_QUEUE": queue, "PYTHONPATH": str(HERE)}


async def peer_once(
    broker: BenchBroker, url: str, name: str, n: int, timed: int, logs: Path
) -> dict[str, float]:
    """Enqueue, start the workers, time the drain, stop, delete; drain and enqueue rates."""
    peer = PEERS[name]
    queue = f"bench-peer-{name}-{uuid.uuid4().hex[:8]}"
    env = peer_env(url, queue)
    workers: Proc | None = None
    try:
        enqueue = [str(PEER_BIN / "python"), str(HERE / "enqueue.py"), peer.kind, str(n)]
        proc = Proc(
            [*enqueue, "--timed", str(timed)], logs / f"{queue}-enqueue.log", env, pipe=True
        )
        enqueued = await proc.report_async(timeout=600)
        argv = [a.replace("{queue}", queue) for a in peer.worker]
        argv[0] = str(PEER_BIN / argv[0])
        workers = Proc(argv, logs / f"{queue}-workers.log", env, pipe=False)
        window = await wait_consumers(broker, queue, peer.consumers, [workers], within=120)

        async def empty() -> bool:
            return (await broker.state(queue)).ready == 0

        end = await wait_until(empty, [workers], 600, f"{queue} drained")
        await asyncio.sleep(0.5)  # the last prefetched deliveries are acked
        workers.stop(grace=20)
        left = (await broker.state(queue)).ready
        return {
            "rate": window.tasks / (end - window.start),
            "enqueue": enqueued["rate"],
            "left": left,
        }
    finally:
        if workers is not None:
            workers.stop(grace=5)
        await broker.delete(None, peer.queues(queue), peer.exchanges(queue))


def warren_once(n: int, processes: int, concurrency: int) -> dict[str, float]:
    """Warren and the raw aio-pika ceiling, by ``warren bench consumer`` (its own namespace)."""
    argv = [
        sys.executable,
        "-m",
        "warren",
        "bench",
        "consumer",
        "-n",
        str(n),
        "-r",
        "1",
    ]
    argv += ["-p", str(processes), "-c", str(concurrency), "--variants", "raw,warren"]
    done = subprocess.run(
        [*argv, "--json", "--quiet"], capture_output=True, text=True, timeout=900, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"warren bench failed:\n{done.stderr[-3000:]}")
    rows = {r["name"]: r for r in json.loads(done.stdout)["rows"]}
    warren = rows["warren"]
    costs = {k: float(v) for k, v in warren["extra"].items() if k in WARREN_COSTS}
    return {"rate": warren["value"], "raw": rows["raw"]["value"], **costs}


def peer_versions() -> dict[str, str]:
    code = "import importlib.metadata as m, json, sys; "
    code += "print(json.dumps({p: m.version(p) for p in sys.argv[1:]}))"
    out = subprocess.run(
        [str(PEER_BIN / "python"), "-c", code, *PEER_PACKAGES],
        capture_output=True,
        text=True,
        check=True,
    )
    versions: dict[str, str] = json.loads(out.stdout)
    return versions


async def compare(args: argparse.Namespace) -> Report:
    url = Settings().broker_url
    names = [p for p in args.peers.split(",") if p]
    if unknown := set(names) - set(ALL):
        raise SystemExit(f"unknown: {', '.join(sorted(unknown))}; known: {', '.join(ALL)}")
    progress = Progress("peers", len(names) * args.repeats, not args.quiet)
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    logs = HERE / "logs"
    logs.mkdir(exist_ok=True)
    broker = await BenchBroker.open(url)
    try:
        for repeat in range(args.repeats):
            for name in names:
                progress.start(f"{name} #{repeat + 1}")
                if name == "warren":
                    sample = await asyncio.to_thread(warren_once, args.tasks, 2, args.concurrency)
                else:
                    sample = await peer_once(broker, url, name, args.tasks, args.timed, logs)
                samples[name].append(sample)
                progress.finish(f"{name} {sample['rate']:,.0f} tasks/s")
        progress.close()
        report = Report(
            "peers", settings=vars(args), environment=environment(broker.server_version())
        )
    finally:
        await broker.close()
    if any(n != "warren" for n in names):
        report.environment["peer_packages"] = peer_versions()
    summarise(report, samples)
    return report


def summarise(report: Report, samples: dict[str, list[dict[str, float]]]) -> None:
    warren = samples.get("warren", [])
    if warren:
        report.rows.append(
            Row("raw aio-pika (ceiling)", "drain", "tasks/s", [s["raw"] for s in warren])
        )
    for name, runs in samples.items():
        report.rows.append(_row(report, name, runs))
    rows = {r.name: r for r in report.rows}
    if (ceiling := rows.get("raw aio-pika (ceiling)")) is not None:
        for row in report.rows:
            row.ratio = ratio(row.value, ceiling.value)
    if "warren" in rows and "dramatiq-2x8" in rows:
        versus = ratio(rows["warren"].value, rows["dramatiq-2x8"].value)
        if versus is not None:
            report.targets.append(Target("warren / dramatiq", versus, 1.5, ">="))
    if "warren" in rows and ceiling is not None:
        report.targets.append(
            Target("warren / raw aio-pika", rows["warren"].ratio or 0, 0.70, ">=")
        )


def _row(report: Report, name: str, runs: list[dict[str, float]]) -> Row:
    """One system's drain; Warren's with what a task cost it, a peer's with its enqueue rate."""
    row = Row(name, "drain", "tasks/s", [s["rate"] for s in runs])
    if name == "warren":
        row.extra = _medians(runs, WARREN_COSTS)
    if name in PEERS:
        row.extra = {"enqueue_per_s": _medians(runs, ["enqueue"])["enqueue"]}
        if any(s["left"] for s in runs):
            row.extra["left"] = max(s["left"] for s in runs)
        report.notes.append(f"{name}: {PEERS[name].setup}")
    return row


def _medians(runs: list[dict[str, float]], keys: Sequence[str]) -> dict[str, float]:
    return {k: Row("", "", "", [s.get(k, float("nan")) for s in runs]).value for k in keys}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks/peers/run", description=__doc__)
    p.add_argument("-n", "--tasks", type=int, default=20_000, help="tasks per drain")
    p.add_argument("-r", "--repeats", type=int, default=3, help="runs per system (median)")
    p.add_argument("--timed", type=int, default=2000, help="tasks enqueued one by one, timed")
    p.add_argument("-c", "--concurrency", type=int, default=16, help="Warren's, per process")
    p.add_argument("--peers", default=",".join(ALL), help="comma-separated subset")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    asyncio.run(compare(args)).emit(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
