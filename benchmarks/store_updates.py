"""Micro benchmark of the recorder's updates on a store that already holds records.

``TaskStore.apply`` of 50 ``succeeded`` changes per transaction (400 transactions) over
30,000 ``queued`` records, in a quiet process: CPU and wall time per transaction. Run it
from a tree's root (``PYTHONPATH=DIR python benchmarks/store_updates.py`` for another tree).
``benchmarks/store_apply.py`` measures new and finished tasks together on a small store with
the loop kept busy; this one the cost of updating rows among many, where index upkeep shows.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

from warren.service.store import Change, open_store
from warren.service.store.model import Status

NOW = datetime.now(UTC)
RECORDS = 30_000
PER_TRANSACTION = 50
TRANSACTIONS = 400


def change(task_id: str, status: Status, seconds: float) -> Change:
    at = NOW + timedelta(seconds=seconds)
    return Change(
        task_id=task_id,
        type="diag.echo",
        queue="diag",
        max_attempts=3,
        created_at=NOW,
        submitter="s",
        status=status,
        attempt=1,
        at=at,
    )


async def main() -> None:
    store = await open_store(f"sqlite:///{tempfile.mkdtemp()}/warren.db")
    ids = [uuid.uuid4().hex for _ in range(RECORDS)]
    for start in range(0, RECORDS, 500):
        await store.apply([change(i, Status.QUEUED, 0) for i in ids[start : start + 500]])
    cpu, wall = time.process_time(), time.perf_counter()
    for n in range(TRANSACTIONS):
        batch = ids[n * PER_TRANSACTION : (n + 1) * PER_TRANSACTION]
        await store.apply([change(i, Status.SUCCEEDED, 1) for i in batch])
    cpu_ms = 1000 * (time.process_time() - cpu) / TRANSACTIONS
    wall_ms = 1000 * (time.perf_counter() - wall) / TRANSACTIONS
    print(f"CPU {cpu_ms:.2f} ms, wall {wall_ms:.2f} ms per transaction of {PER_TRANSACTION}")
    await store.close()


if __name__ == "__main__":
    asyncio.run(main())
