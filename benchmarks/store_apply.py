"""Micro benchmark of the recorder's write: ``TaskStore.apply`` on a SQLite store, its loop busy.

Each transaction is what the recorder writes at half the sustainable rate: 25 tasks' first
change (``queued``) and 25 earlier tasks' ``succeeded``. A second task keeps the event loop
busy with CPU slices of ``--slice-ms`` back to back, as request handling does in the gateway:
every time the store's thread hands a result back, it waits for the slice under way, so the
wall time of a transaction grows with its number of thread round trips.

Run it from a tree's root (``PYTHONPATH=DIR python benchmarks/store_apply.py`` for another
tree; the store's code is all it imports). It prints one JSON line: the wall time of apply
(p50, p99, mean, in ms) and the CPU of the whole process per transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from warren.service.store import Change, TaskStore, open_store
from warren.service.store.model import Status

PER_KIND = 25


def change(task_id: str, status: Status) -> Change:
    now = datetime.now(UTC)
    return Change(
        task_id=task_id,
        type="bench.noop",
        queue="default",
        status=status,
        attempt=1,
        max_attempts=3,
        at=now,
        created_at=now,
        started_at=now if status is Status.SUCCEEDED else None,
        result={"ok": True} if status is Status.SUCCEEDED else None,
        submitter="bench",
        worker="w1" if status is Status.SUCCEEDED else None,
    )


async def busy(slice_seconds: float, idle_seconds: float) -> None:
    """Hold the loop ``slice_seconds`` at a time, then let it idle ``idle_seconds``."""
    while True:
        end = time.perf_counter() + slice_seconds
        while time.perf_counter() < end:
            pass
        await asyncio.sleep(idle_seconds)


async def run(
    store: TaskStore, transactions: int, slice_seconds: float, idle_seconds: float
) -> list[float]:
    walls: list[float] = []
    earlier: list[str] = []
    burner = asyncio.create_task(busy(slice_seconds, idle_seconds)) if slice_seconds > 0 else None
    try:
        for _ in range(transactions):
            new = [uuid.uuid4().hex for _ in range(PER_KIND)]
            batch = [change(t, Status.QUEUED) for t in new]
            batch += [change(t, Status.SUCCEEDED) for t in earlier]
            started = time.perf_counter()
            await store.apply(batch)
            walls.append(time.perf_counter() - started)
            earlier = new
    finally:
        if burner is not None:
            burner.cancel()
    return walls


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--transactions", type=int, default=200)
    parser.add_argument("--slice-ms", type=float, default=1.5)
    parser.add_argument("--idle-ms", type=float, default=0.0, help="the loop's rest between slices")
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        store = await open_store(f"sqlite:///{Path(scratch) / 'bench.db'}")
        try:
            await run(store, 10, 0.0, 0.0)  # warm-up: tables, statement cache
            cpu = time.process_time()
            walls = await run(store, args.transactions, args.slice_ms / 1000, args.idle_ms / 1000)
            cpu = time.process_time() - cpu
        finally:
            await store.close()
    ms = sorted(w * 1000 for w in walls)
    print(
        json.dumps(
            {
                "label": args.label,
                "slice_ms": args.slice_ms,
                "idle_ms": args.idle_ms,
                "transactions": len(ms),
                "p50_ms": round(statistics.median(ms), 2),
                "p99_ms": round(ms[int(len(ms) * 0.99) - 1], 2),
                "mean_ms": round(statistics.fmean(ms), 2),
                "cpu_ms_per_tx": round(cpu * 1000 / len(ms), 2),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
