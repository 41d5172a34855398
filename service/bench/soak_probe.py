"""What ``warren bench soak`` samples every few seconds: each process's RSS, the store's size
and how far the store is behind.

RSS comes from ``/proc/<pid>/status`` (``VmRSS``) for every process the soak
started and every descendant of it (a supervised gateway's workers), each a
series of its own: a leak shows as one series that keeps climbing. The store's
size is its files (SQLite: the database, its WAL and shared memory) or its
table's total relation size (PostgreSQL). Its lag is read two ways: the
recorder queue's depth (events the broker holds that no transaction has
written yet) and now minus the newest ``updated_at`` in the store.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import orjson
from aiormq.abc import DeliveredMessage

from warren.service.bench.broker import BenchBroker
from warren.service.bench.procs import Proc
from warren.service.store import SQLITE_PREFIX, TaskStore, open_store
from warren.service.store.sql import TABLE
from warren.service.wire import event_objects

MIB = 1024 * 1024


def rss_bytes(pid: int) -> int | None:
    """Resident set size of one process now; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children of each of its threads, recursively)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                for child in (task / "children").read_text().split():
                    found += [int(child), *descendants(int(child))]
    return found


def process_rss(procs: dict[str, Proc]) -> dict[str, int]:
    """``label → RSS`` of each started process, and ``label:pid`` of each descendant."""
    sizes: dict[str, int] = {}
    for label, proc in procs.items():
        if (own := rss_bytes(proc.pid)) is not None:
            sizes[label] = own
        for pid in descendants(proc.pid):
            if (child := rss_bytes(pid)) is not None:
                sizes[f"{label}:{pid}"] = child
    return sizes


class StoreProbe:
    """The store the gateway writes, opened read-mostly from the soak's own process."""

    def __init__(self, url: str, store: TaskStore) -> None:
        self.url = url
        self._store = store

    @classmethod
    async def open(cls, url: str) -> StoreProbe:
        return cls(url, await open_store(url))

    async def size_bytes(self) -> int:
        if self.url.startswith(SQLITE_PREFIX):
            path = Path(self.url.removeprefix(SQLITE_PREFIX))
            files = (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
            return sum(f.stat().st_size for f in files if f.exists())
        rows = await self._store.db.read(f"SELECT pg_total_relation_size('{TABLE}') AS n")
        return int(rows[0]["n"])

    async def newest(self) -> datetime | None:
        """The newest change the store holds (an index read: ``updated_at`` is indexed)."""
        rows = await self._store.db.read(f"SELECT MAX(updated_at) AS t FROM {TABLE}")
        value = self._store.dialect.decode_time(rows[0]["t"]) if rows else None
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)

    async def close(self) -> None:
        await self._store.close()


@dataclass(frozen=True)
class Sample:
    """One look at the whole pipeline, ``at`` seconds after the soak started."""

    at: float
    rss: dict[str, int]
    succeeded: int  # ``succeeded`` events seen so far
    work_ready: int  # tasks waiting in the work queue
    recorder_ready: int  # event messages waiting in the recorder queue
    store_bytes: int
    store_behind_s: float  # now minus the store's newest change


@dataclass
class Samples:
    """The series of a run, and its figures per process."""

    started: float = field(default_factory=time.time)
    items: list[Sample] = field(default_factory=list)

    def labels(self) -> list[str]:
        return sorted({label for s in self.items for label in s.rss})

    def series(self, label: str) -> list[int]:
        return [s.rss[label] for s in self.items if label in s.rss]

    def growth(self, label: str, warm_after: int) -> float:
        """MiB from the first sample once ``warm_after`` tasks succeeded to the last one.

        Start-up and warm-up (imports, pools, caches filling) are not growth: what
        counts is what the process keeps gaining while it works at a steady rate.
        """
        warm = [s.rss[label] for s in self.items if label in s.rss and s.succeeded >= warm_after]
        series = warm or self.series(label)
        return (series[-1] - series[0]) / MIB if series else 0.0


async def take_sample(
    samples: Samples,
    procs: dict[str, Proc],
    broker: BenchBroker,
    queues: tuple[str, str],
    store: StoreProbe,
    succeeded: int,
) -> Sample:
    """Read everything once; append and return it."""
    work, recorder = await broker.state(queues[0]), await broker.state(queues[1])
    newest = await store.newest()
    now = time.time()
    behind = max(0.0, now - newest.timestamp()) if newest is not None else float("nan")
    sample = Sample(
        round(now - samples.started, 1),
        process_rss(procs),
        succeeded,
        work.ready,
        recorder.ready,
        await store.size_bytes(),
        behind,
    )
    samples.items.append(sample)
    return sample


NOT_FINAL = "queued,scheduled,running,retrying"


async def store_settled(
    http: aiohttp.ClientSession, base: str, since: datetime, broker: BenchBroker, queue: str
) -> bool:
    """Whether the store has caught up now: the recorder queue (``queue``) holds no ready
    message and the task API lists no task changed since ``since`` as not final."""
    if (await broker.state(queue)).ready:
        return False
    params = {"status": NOT_FINAL, "since": since.isoformat(), "limit": "1"}
    async with http.get(f"{base}/v1/tasks", params=params) as answer:
        return not orjson.loads(await answer.read())["items"]


def thinned(values: Sequence[float], points: int = 12) -> list[float]:
    """At most ``points`` values spread over the series, always its first and last."""
    if len(values) <= points:
        return list(values)
    step = (len(values) - 1) / (points - 1)
    return [values[round(i * step)] for i in range(points)]


class SucceededIds:
    """The ids of ``succeeded`` events, from a queue of the soak's own bound to
    ``<queue>.succeeded``: a count by status would also count a task the gateway refused
    after publishing it (no confirm in time: it runs, but its id was never accepted) and a
    task run twice, and call the drain done too early."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    async def start(self, broker: BenchBroker, exchange: str, routing_key: str) -> None:
        channel = await broker.connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key)
        raw = await channel.get_underlay_channel()
        await raw.basic_consume(queue.name, self._on_message, no_ack=True)

    async def _on_message(self, message: DeliveredMessage) -> None:
        events = event_objects(message.body, message.header.properties.headers)
        self.seen.update(str(event["task_id"]) for event in events)
