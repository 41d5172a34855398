"""Micro benchmark of the store's cost per task by the kind of task id: random (UUIDv4, task
ids before 2026-11-30) against time-ordered (UUIDv7, ``new_task_id``).

A SQLite store first holds ``--records`` finished tasks (a gateway's store after hours of
work; records are kept ``WARREN_STORE_RETENTION_DAYS``); then ``--tasks`` new tasks are
written in batches of ``--batch``, as the recorder does: their ``queued`` records, then their
``succeeded`` changes. Printed per kind, in turn (``--rounds``): the CPU of the whole process
(the store's thread included) per task, for each of the two writes, and the database's size
per record at the end (after a checkpoint: the WAL emptied into it).

    .venv/bin/python benchmarks/store_ids.py --records 100000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from store_apply import change  # this directory's: the same changes as that benchmark's

from warren.service.store import Change, TaskStore, open_store
from warren.service.store.model import Status, new_task_id

KINDS: dict[str, Callable[[], str]] = {
    "random (uuid4)": lambda: uuid.uuid4().hex,
    "time-ordered (uuid7)": new_task_id,
}


async def cpu_per_task(store: TaskStore, batches: list[list[Change]]) -> float:
    started = time.process_time()
    for batch in batches:
        await store.apply(batch)
    return (time.process_time() - started) / sum(map(len, batches)) * 1e6


async def one(kind: str, args: argparse.Namespace) -> tuple[float, float, float]:
    make = KINDS[kind]
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "tasks.db"
        store = await open_store(f"sqlite:///{path}")
        try:
            for _ in range(args.records // 500):
                await store.apply([change(make(), Status.SUCCEEDED) for _ in range(500)])
            ids = [make() for _ in range(args.tasks)]
            chunks = [ids[i : i + args.batch] for i in range(0, len(ids), args.batch)]
            queued = await cpu_per_task(
                store, [[change(i, Status.QUEUED) for i in c] for c in chunks]
            )
            done = await cpu_per_task(
                store, [[change(i, Status.SUCCEEDED) for i in c] for c in chunks]
            )
        finally:
            await store.close()
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return queued, done, path.stat().st_size / (args.records + args.tasks)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000, help="records already stored")
    parser.add_argument("--tasks", type=int, default=20_000, help="new tasks written")
    parser.add_argument("--batch", type=int, default=200, help="changes per transaction")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each kind, in turn")
    args = parser.parse_args()
    for _ in range(args.rounds):
        for kind in KINDS:
            queued, done, size = await one(kind, args)
            print(
                f"{kind:21} queued {queued:6.1f} µs/task   succeeded {done:6.1f} µs/task   "
                f"{size:5.0f} bytes/record"
            )


if __name__ == "__main__":
    asyncio.run(main())
