"""The store's lag in ``warren bench e2e``: how long after a task's ``succeeded`` event is on
the broker the task API says ``succeeded``, the way a user sees it.

Two readings:

* **sampled lag**, during the paced window: every ``SAMPLE_EVERY``-th task whose
  ``succeeded`` event reaches the benchmark's subscriber is asked for with a long-poll
  (``GET /v1/tasks/{id}?wait=S``, answered once the record is final); its lag is the time
  the answer came minus the time its event arrived. One request per sampled task, at most
  ``MAX_IN_FLIGHT`` at once (a sample due while all are busy is skipped and counted), so
  the probe costs the gateway a few requests a second, not a polling loop;
* **end lag**, after the window: from the last paced task's event to the first moment the
  recorder queue has no ready message and the task API lists none of the window's tasks as
  not final (``soak_probe.store_settled``, checked every ``SETTLE_POLL_SECONDS`` from the
  end of the sending; the lag runs to the end of the first check begun after that event).
  AMQP cannot read a queue's unacked count (a passive declare gives the ready count only;
  the management plugin is not assumed), so "nothing left unacked" is read through what the
  recorder does: it acks a batch as soon as every change of it is written, so every record
  final means every delivery written (its ack follows in the same step of the writer).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import datetime

import aiohttp
import orjson

from warren.service.bench.broker import BenchBroker
from warren.service.bench.report import percentile
from warren.service.bench.soak_probe import store_settled

SAMPLE_EVERY = 20  # one task in this many is asked for
MAX_IN_FLIGHT = 16  # long-polls at once (idle waiters; the requests are one per sample)
WAIT_SECONDS = 5.0  # each long-poll's wait (asked again while not succeeded)
ASKS = 4  # long-polls per sampled task at most: a record that never turns is "unanswered"
SETTLE_POLL_SECONDS = 0.01
SETTLE_WITHIN_SECONDS = 60.0


@dataclass
class LagProbe:
    """Long-polls the task API for a sample of the tasks whose ``succeeded`` event arrived."""

    base: str
    lags: list[float] = field(default_factory=list)
    skipped: int = 0  # samples due while ``MAX_IN_FLIGHT`` long-polls were open
    unanswered: int = 0  # sampled tasks the API never said ``succeeded`` for
    _http: aiohttp.ClientSession | None = None
    _seen: int = 0
    _polls: set[asyncio.Task[None]] = field(default_factory=set)

    def start(self) -> None:
        """Sample from now on (a paced window starts), with fresh figures."""
        self.lags, self.skipped, self.unanswered, self._seen = [], 0, 0, 0
        self._http = aiohttp.ClientSession()

    def arrived(self, task_id: str, at: float) -> None:
        """A task's first ``succeeded`` event reached the subscriber at ``at`` (wall clock)."""
        if self._http is None:
            return
        self._seen += 1
        if self._seen % SAMPLE_EVERY:
            return
        if len(self._polls) >= MAX_IN_FLIGHT:
            self.skipped += 1
            return
        poll = asyncio.create_task(self._ask(self._http, task_id, at))
        self._polls.add(poll)
        poll.add_done_callback(self._polls.discard)

    async def _ask(self, http: aiohttp.ClientSession, task_id: str, at: float) -> None:
        url = f"{self.base}/v1/tasks/{task_id}?wait={WAIT_SECONDS}"
        for _ in range(ASKS):
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url) as answer:
                    body = await answer.read()
                if answer.status == 200 and orjson.loads(body).get("status") == "succeeded":
                    self.lags.append(time.time() - at)
                    return
        self.unanswered += 1

    async def stop(self) -> dict[str, float]:
        """Stop sampling, let the open long-polls answer; the window's figures."""
        http, self._http = self._http, None
        if self._polls:
            await asyncio.wait(set(self._polls), timeout=WAIT_SECONDS * ASKS)
        for poll in list(self._polls):
            poll.cancel()
        if http is not None:
            await http.close()
        return {
            "store lag p50": percentile(self.lags, 50),
            "store lag p99": percentile(self.lags, 99),
            "store lag samples": float(len(self.lags)),
            "store lag skipped": float(self.skipped + self.unanswered),
        }


@dataclass
class SettleWatch:
    """Checks whether the store has caught up (``soak_probe.store_settled``), every
    ``SETTLE_POLL_SECONDS`` from the end of the window's sending: the paced tasks are known
    only once the generator has exited, by when the last event has long arrived, so the
    checks are kept and the end lag is read from them afterwards."""

    checks: list[tuple[float, float, bool]] = field(default_factory=list)  # began, ended, ok
    _task: asyncio.Task[None] | None = None
    _stopping: bool = False

    def start(
        self, base: str, broker: BenchBroker, queue: str, since: datetime, begin: float
    ) -> None:
        """Check from ``begin`` (wall clock) on: only what changed after ``since`` counts."""
        self.checks = []
        self._task = asyncio.create_task(self._poll(base, broker, queue, since, begin))

    async def _poll(
        self, base: str, broker: BenchBroker, queue: str, since: datetime, begin: float
    ) -> None:
        await asyncio.sleep(max(0.0, begin - time.time()))
        async with aiohttp.ClientSession() as http:
            while not self._stopping:
                began = time.time()
                settled = await store_settled(http, base, since, broker, queue)
                self.checks.append((began, time.time(), settled))
                await asyncio.sleep(SETTLE_POLL_SECONDS)

    async def lag_after(self, last: float) -> float:
        """Seconds from ``last`` (the last paced event's arrival) to the end of the first check
        begun after it that found the store settled; NaN if none within the bound."""
        deadline = time.monotonic() + SETTLE_WITHIN_SECONDS
        try:
            while time.monotonic() < deadline and self._task is not None:
                if self._task.done():  # a check failed: let its error out
                    self._task.result()
                for began, ended, settled in self.checks:
                    if began >= last and settled:
                        return ended - last
                await asyncio.sleep(SETTLE_POLL_SECONDS)
            return float("nan")
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Ends after the check under way: cancelling a passive declare midway would make
        aiormq close the benchmark's shared channel, which the next repeat needs."""
        if self._task is not None:
            self._stopping = True
            with contextlib.suppress(Exception):
                await self._task  # its error, if any, was read by ``lag_after``
            self._task = None
            self._stopping = False
