"""The soak's submitter: N ``diag.echo`` tasks through ``POST /v1/tasks/batch``, a few batches
in flight, and the ids the gateway accepted.

Raw HTTP (aiohttp and orjson), not the client: the soak's own process shares
the cores with what it measures, and a million client models would cost it
more than the gateway. A task the gateway refused (its item a problem, e.g. a
``503`` while the broker blocks publishers) is submitted again later: the soak
counts it as a refusal, never as lost.

The backlog is bounded (``max_backlog`` tasks ready in the work queue): the
broker is shared, and a million persistent messages waiting at once would
measure its paging to disk, not Warren. Submission pauses while the backlog is
over the bound, so the run soaks the pipeline at the rate it drains.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import orjson

from warren.service.bench.batch import batch_body

GATE_SECONDS = 0.2  # how often a paused submitter looks at the backlog again
MAX_FAILED_REQUESTS = 20  # whole requests failed in a row: the gateway is gone, stop


@dataclass
class Submitted:
    """What the gateway accepted, and what it took."""

    ids: set[str] = field(default_factory=set)
    refused: int = 0  # task items answered with a problem (submitted again)
    requests: int = 0
    failed_requests: int = 0  # non-200 answers or connection errors (retried)
    paused_seconds: float = 0.0  # waiting for the backlog to shrink
    seconds: float = 0.0


@dataclass
class _Plan:
    remaining: int
    batch: int
    bodies: dict[int, bytes] = field(default_factory=dict)

    def take(self) -> int:
        size = min(self.batch, self.remaining)
        self.remaining -= size
        return size

    def body(self, size: int) -> bytes:
        if size not in self.bodies:
            self.bodies[size] = batch_body(size)
        return self.bodies[size]


async def submit_all(
    url: str,
    tasks: int,
    batch: int,
    in_flight: int,
    backlog: Callable[[], Awaitable[int]],
    max_backlog: int,
) -> Submitted:
    """Submit ``tasks`` tasks in batches of ``batch``, ``in_flight`` requests at a time."""
    done = Submitted()
    plan = _Plan(tasks, batch)
    started = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        sender = _Sender(http, url, plan, done, backlog, max_backlog)
        await asyncio.gather(*(sender.loop() for _ in range(in_flight)))
    done.seconds = time.perf_counter() - started
    return done


@dataclass
class _Sender:
    http: aiohttp.ClientSession
    url: str
    plan: _Plan
    done: Submitted
    backlog: Callable[[], Awaitable[int]]
    max_backlog: int
    failed_in_row: int = 0

    async def loop(self) -> None:
        while (size := self.plan.take()) > 0:
            await self._gate()
            accepted = await self._post(size)
            self.plan.remaining += size - accepted  # refused or failed: again, later

    async def _gate(self) -> None:
        paused = time.perf_counter()
        while True:  # the broker's count, polled: there is nothing to wait on here
            if await self.backlog() <= self.max_backlog:
                break
            await asyncio.sleep(GATE_SECONDS)
        self.done.paused_seconds += time.perf_counter() - paused

    async def _post(self, size: int) -> int:
        """One batch; how many of its tasks were accepted."""
        self.done.requests += 1
        try:
            async with self.http.post(self.url, data=self.plan.body(size), headers=JSON) as answer:
                body = await answer.read()
                status = answer.status
        except (aiohttp.ClientError, TimeoutError):
            status, body = 0, b""
        if status != 200:
            return await self._failed(status, body)
        self.failed_in_row = 0
        items = orjson.loads(body)["items"]
        accepted = [item["id"] for item in items if "id" in item]
        self.done.ids.update(accepted)
        if refused := len(items) - len(accepted):
            self.done.refused += refused
            await asyncio.sleep(1.0)  # a refusal says Retry-After: the broker needs a moment
        return len(accepted)

    async def _failed(self, status: int, body: bytes) -> int:
        self.done.failed_requests += 1
        self.failed_in_row += 1
        if self.failed_in_row > MAX_FAILED_REQUESTS:
            raise RuntimeError(f"the batch endpoint keeps failing: {status} {body[:300]!r}")
        await asyncio.sleep(1.0)
        return 0


JSON = {"Content-Type": "application/json"}
