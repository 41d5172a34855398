"""Listing at scale: ``GET /v1/tasks`` with each single filter over N task records, and
paging through M dead letters, through a real gateway on SQLite or PostgreSQL.

``python -m warren.service.bench.listing [--records 200000] [--dead 10000] [--store-url U]``
fills a fresh store (its own file, or the given database: use an empty one), serves it with
the gateway (``create_app``, authentication off) and prints the median of each request
(``--repeats``) and the time to page through every dead letter (500 a page), as a Markdown
table for ``benchmarks/README.md``. Targets: each list median under 100 ms, the whole dead
letter listing under 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
from aiohttp.test_utils import TestClient, TestServer

from warren.service import topology
from warren.service.apps import load_app
from warren.service.http.app import create_app
from warren.service.settings import Settings
from warren.service.store import TaskRecord, TaskStore, open_store
from warren.service.store.dead import DeadLetter, DeadLetterStore
from warren.service.store.model import Status
from warren.service.store.sql import UPSERT, encode

CHUNK = 5000
Client = TestClient[Any, Any]
# Recent: the gateway prunes records and dead letters past their retention at start-up.
T0 = datetime.now(UTC) - timedelta(hours=1)
TYPES = ("diag.echo", "diag.sleep", "diag.flaky", "email.send", "diag.fail")
QUEUES = ("diag", "email", "webhooks", "media")
STATUSES = (Status.SUCCEEDED,) * 8 + (Status.DEAD, Status.RUNNING)
FILTERS = (
    ("no filter", ""),
    ("status=dead", "&status=dead"),
    ("type=diag.fail (rare)", "&type=diag.fail"),
    ("queue=email", "&queue=email"),
    ("since (last 1%)", "&since={since}"),
)


def _record(i: int, n: int) -> TaskRecord:
    created = T0 + timedelta(milliseconds=i)
    rare = i % 1000 == 0  # one in a thousand is diag.fail: a filter that must not scan
    return TaskRecord(
        id=uuid.uuid4().hex,
        type=TYPES[4] if rare else TYPES[i % 4],
        queue=QUEUES[i % len(QUEUES)],
        status=STATUSES[i % len(STATUSES)],
        attempt=1,
        max_attempts=5,
        created_at=created,
        updated_at=created,
        submitter=f"client-{i % 10}",
    )


async def fill(store: TaskStore, dead: DeadLetterStore, records: int, letters: int) -> None:
    for start in range(0, records, CHUNK):
        rows = [
            encode(_record(i, records), store.dialect)
            for i in range(start, min(records, start + CHUNK))
        ]
        async with store.db.write() as tx:
            await tx.executemany(UPSERT, rows)
    batch = [
        DeadLetter(uuid.uuid4().hex, QUEUES[i % 4], TYPES[i % 5], "attempts-exhausted", "E", "e",
                   5, T0 + timedelta(milliseconds=i), 20, None, b'{"n": 1}', {}, {})
        for i in range(letters)
    ]  # fmt: skip
    for start in range(0, letters, 1000):
        await dead.keep(batch[start : start + 1000])


async def median_ms(client: Client, path: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = await client.get(path)
        await response.read()
        assert response.status == 200, path
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def page_all_dead(client: Client) -> tuple[int, float]:
    started, seen, cursor = time.perf_counter(), 0, ""
    while True:
        body = await (await client.get(f"/v1/dead-letters?limit=500{cursor}")).json()
        seen += len(body["items"])
        if not body["next_cursor"]:
            return seen, time.perf_counter() - started
        cursor = f"&cursor={body['next_cursor']}"


async def run(args: argparse.Namespace) -> list[tuple[str, str]]:
    url = args.store_url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'listing.db'}"
    store = await open_store(url)
    try:
        await fill(store, DeadLetterStore(store.db), args.records, args.dead)
    finally:
        await store.close()
    namespace = f"bench-{uuid.uuid4().hex[:10]}"  # never another gateway's dead letters
    settings = Settings(
        store_url=url, auth_disabled=True, http_port=0, app=None, namespace=namespace
    )
    since = (T0 + timedelta(milliseconds=int(args.records * 0.99))).isoformat()
    rows: list[tuple[str, str]] = []
    async with TestClient(TestServer(create_app(settings))) as client:
        for name, extra in FILTERS:
            path = "/v1/tasks?limit=50" + extra.format(since=since.replace("+", "%2B"))
            rows.append(
                (f"GET /v1/tasks, {name}", f"{await median_ms(client, path, args.repeats):.1f} ms")
            )
        page = await median_ms(client, "/v1/tasks?limit=100", args.repeats)
        rows.append(("tasks page (100 rows)", f"{page:.1f} ms"))
        seen, seconds = await page_all_dead(client)
        rows.append((f"all {seen} dead letters, 500 a page", f"{seconds:.2f} s"))
    await _delete_topology(settings)
    return rows


async def _delete_topology(settings: Settings) -> None:
    connection = await aio_pika.connect_robust(settings.broker_url)
    async with connection:
        channel = await connection.channel()
        await topology.delete(channel, topology.build(settings, load_app(None).catalog.queues))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m warren.service.bench.listing")
    p.add_argument("--records", type=int, default=200_000)
    p.add_argument("--dead", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=21)
    p.add_argument("--store-url", help="an empty database (default: a new SQLite file)")
    rows = asyncio.run(run(p.parse_args(argv)))
    print("| measure | median |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
