"""``warren bench soak``: N tasks through the batch endpoint, every one ``succeeded``, memory flat.

The whole pipeline runs as deployed, in a fresh namespace: one ``warren
gateway`` (its recorder writes the task store) and ``--consumers`` ``warren
consume`` processes on the built-in ``diag`` queue. The soak submits
``-n`` ``diag.echo`` tasks through ``POST /v1/tasks/batch`` (``--batch`` per
request, a few requests in flight, the work queue's backlog bounded), samples
every ``--sample-seconds`` each process's RSS, the store's size and its lag,
and once a ``succeeded`` event of every accepted id arrived, asks the task API: every accepted
id must be listed ``succeeded`` (paged through ``GET /v1/tasks?status=succeeded``,
500 a page, newest first, on the status index).

It exits non-zero when a task did not succeed or when a process's RSS grew by
more than ``--rss-growth-mib`` from the first sample after 10 % of the tasks
succeeded (start-up and warm-up are not growth) to the last: at a million
tasks the default bound of 64 MiB catches a leak of 70 bytes per task.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import orjson

from warren.service.bench.common import BenchRun, bench_run, wait_consumers
from warren.service.bench.procs import Proc, free_port, wait_http, warren_env
from warren.service.bench.report import Progress, Report
from warren.service.bench.soak_probe import (
    Samples,
    StoreProbe,
    SucceededIds,
    store_settled,
    take_sample,
)
from warren.service.bench.soak_report import Figures, passed, report_of
from warren.service.bench.soak_submit import submit_all
from warren.service.store.db import StoreUnavailable

log = logging.getLogger(__name__)

__all__ = ["add_arguments", "passed", "run"]

QUEUE = "diag"
PAGE = 500  # the task list's largest page
MAX_STRAGGLERS = 1000  # tasks not listed at first, then asked for one by one
STRAGGLER_WAIT_SECONDS = 5  # each one's long-poll


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", "--tasks", type=int, default=100_000, help="tasks to submit")
    p.add_argument("--batch", type=int, default=500, help="tasks per POST /v1/tasks/batch")
    p.add_argument("--in-flight", type=int, default=4, help="batch requests at a time")
    p.add_argument("--consumers", type=int, default=2, help="consumer processes")
    p.add_argument("-c", "--concurrency", type=int, default=16)
    p.add_argument("--store-url", help="the gateway's store (default: a SQLite file of the run)")
    p.add_argument("--sample-seconds", type=float, default=5.0)
    p.add_argument("--max-backlog", type=int, default=20_000, help="ready tasks before pausing")
    p.add_argument("--rss-growth-mib", type=float, default=64.0, help="bound per process")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds for the whole soak")


async def run(args: argparse.Namespace) -> Report:
    progress = Progress("soak", 3, not args.quiet)
    async with bench_run(keep_logs=args.keep_logs) as run_:
        store_url = args.store_url or run_.store_url("soak")
        procs, base = await _start_pipeline(run_, args, store_url)
        counter = SucceededIds()
        await counter.start(run_.broker, run_.names.events_exchange, f"{QUEUE}.succeeded")
        store = await StoreProbe.open(store_url)
        try:
            report = await _soak(run_, args, procs, base, counter, store, progress)
        finally:
            await store.close()
    progress.close()
    return report


async def _start_pipeline(
    run_: BenchRun, args: argparse.Namespace, store_url: str
) -> tuple[dict[str, Proc], str]:
    port = free_port()
    env = warren_env(run_.settings, store_url=store_url)
    procs = {
        "gateway": run_.start(
            Proc.warren(["gateway", "--port", str(port)], run_.log("gateway"), env)
        )
    }
    consume = ["consume", "--queue", QUEUE, "--concurrency", str(args.concurrency)]
    for i in range(args.consumers):
        argv = [*consume, "--health-port", "0"]
        procs[f"consume-{i}"] = run_.start(Proc.warren(argv, run_.log(f"consume-{i}"), env))
    base = f"http://127.0.0.1:{port}"
    await wait_http(f"{base}/readyz", [procs["gateway"]])
    work = run_.names.work_queue(QUEUE)
    await wait_consumers(run_.broker, work, args.consumers, list(procs.values()))
    return procs, base


async def _soak(
    run_: BenchRun,
    args: argparse.Namespace,
    procs: dict[str, Proc],
    base: str,
    counter: SucceededIds,
    store: StoreProbe,
    progress: Progress,
) -> Report:
    samples = Samples()
    queues = (run_.names.work_queue(QUEUE), run_.names.recorder_queue)
    since = datetime.now(UTC) - timedelta(seconds=1)

    async def sample() -> None:
        await take_sample(samples, procs, run_.broker, queues, store, len(counter.seen))

    async def backlog() -> int:
        return (await run_.broker.state(queues[0])).ready

    sampler = asyncio.create_task(_every(args.sample_seconds, sample))
    deadline = time.monotonic() + args.timeout
    try:
        progress.start(f"submitting {args.tasks:,}")
        url = f"{base}/v1/tasks/batch"
        submitted = await submit_all(
            url, args.tasks, args.batch, args.in_flight, backlog, args.max_backlog
        )
        progress.finish(f"{len(submitted.ids):,} accepted in {submitted.seconds:,.0f} s")
        progress.start("draining")
        drained = await _drained(counter, submitted.ids, procs, deadline)
        progress.finish(f"drained after {drained - samples.started:,.0f} s")
        await sample()
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    progress.start("asking the task API")
    settled = await _settled(base, since, run_, deadline)
    verified = time.time()
    succeeded, stragglers, others = await _succeeded(base, since, submitted.ids)
    progress.finish(f"{succeeded:,} succeeded")
    figures = Figures(samples, submitted, drained, settled, verified, succeeded, others)
    return report_of(run_, args, figures, stragglers)


async def _every(seconds: float, job: Callable[[], Awaitable[None]]) -> None:
    """Run ``job`` every ``seconds``; a store busy for a moment skips one sample, no more."""
    while True:
        try:
            await job()
        except StoreUnavailable as exc:
            log.warning("soak: a sample skipped: %s", exc)
        await asyncio.sleep(seconds)


async def _drained(
    counter: SucceededIds, ids: set[str], procs: dict[str, Proc], deadline: float
) -> float:
    """When a ``succeeded`` event of every accepted id arrived (or the deadline passed)."""
    missing = ids - counter.seen
    while missing and time.monotonic() < deadline:
        for label, proc in procs.items():
            if not proc.alive():
                raise RuntimeError(f"{label} exited during the soak:\n{proc.tail()}")
        await asyncio.sleep(0.1)
        missing = {i for i in missing if i not in counter.seen}  # the few left, not all seen
    return time.time()


async def _settled(base: str, since: datetime, run_: BenchRun, deadline: float) -> float:
    """When the recorder queue is empty and the API lists no task of the run as not final."""
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if await store_settled(http, base, since, run_.broker, run_.names.recorder_queue):
                break
            await asyncio.sleep(0.05)
    return time.time()


async def _succeeded(base: str, since: datetime, ids: set[str]) -> tuple[int, int, int]:
    """How many of ``ids`` the task API lists ``succeeded``; how many of those were stragglers
    (not listed at first: their records were still in the recorder's next batch, asked for
    one by one, long-polling); and how many of the run's tasks it lists dead or cancelled
    (the first page's worth: any at all is a failure)."""
    async with aiohttp.ClientSession() as http:
        found = await _listed(http, base, since, "succeeded", ids)
        missing = list(ids - found)
        stragglers = 0
        if len(missing) <= MAX_STRAGGLERS:
            for task_id in missing:
                url = f"{base}/v1/tasks/{task_id}?wait={STRAGGLER_WAIT_SECONDS}"
                async with http.get(url) as answer:
                    record = orjson.loads(await answer.read()) if answer.status == 200 else {}
                stragglers += record.get("status") == "succeeded"
        failed = await _listed(http, base, since, "dead,cancelled", ids, pages=1)
    return len(found) + stragglers, stragglers, len(failed)


async def _listed(
    http: aiohttp.ClientSession,
    base: str,
    since: datetime,
    status: str,
    ids: set[str],
    pages: int | None = None,
) -> set[str]:
    """Which of ``ids`` the task list shows with ``status``, paging from the newest."""
    found: set[str] = set()
    params = {"status": status, "since": since.isoformat(), "limit": str(PAGE)}
    for _ in itertools.islice(itertools.count(), pages):
        async with http.get(f"{base}/v1/tasks", params=params) as answer:
            page = orjson.loads(await answer.read())
        found.update(item["id"] for item in page["items"] if item["id"] in ids)
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    return found
