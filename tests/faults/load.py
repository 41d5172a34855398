"""Load for the fault scenarios: HTTP submissions to a gateway, or confirmed direct publishes.

Every submission is recorded in the ledger with what its client was told and
when, so a scenario can ask both "was anything promised lost?" and "what did
the gateway answer while the broker was down?".
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass

import aio_pika
import aiohttp
import orjson

from tests.faults.ledger import Answer, Ledger, Told
from warren.service import topology
from warren.service.settings import Settings
from warren.service.wire import Envelope

# Soak knob: task counts, kill cycles and the waits for them are multiplied by this.
SCALE = max(1.0, float(os.environ.get("WARREN_FAULTS_SCALE", "1")))


def scaled(count: int) -> int:
    return round(count * SCALE)


def patience(seconds: float) -> float:
    """A wait that grows with the work: a soak's bigger counts take longer to get through."""
    return seconds * SCALE


@dataclass
class HttpLoad:
    """``workers`` clients POSTing tasks, by default ``diag.echo`` with a unique message as key.

    With another ``task`` the key is only known to the ledger through the task
    id of a ``202``; a refused task that ran anyway would then show as unexpected.

    A refused submission is followed by a short pause, as a well-behaved client
    (honouring ``Retry-After``, only faster) would, so an outage does not turn
    into a tight loop of 503s that starves the 2 cores.
    """

    base_url: str
    ledger: Ledger
    prefix: str
    workers: int = 6
    request_timeout: float = 10.0
    pause_after_refusal: float = 0.1
    pause_between: float = 0.0
    task: Callable[[str], dict[str, object]] | None = None  # default: diag.echo of the key

    def __post_init__(self) -> None:
        self._numbers = itertools.count()
        self.stop = asyncio.Event()

    async def run(self, limit: int | None = None) -> None:
        """Submit until ``stop`` is set (or ``limit`` submissions are made)."""
        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        connector = aiohttp.TCPConnector(limit=self.workers)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            await asyncio.gather(*(self._worker(http, limit) for _ in range(self.workers)))

    async def _worker(self, http: aiohttp.ClientSession, limit: int | None) -> None:
        while not self.stop.is_set():
            n = next(self._numbers)
            if limit is not None and n >= limit:
                return
            answer = await self.submit(http, f"{self.prefix}-{n}")
            if answer.told is not Told.ACCEPTED:
                await asyncio.sleep(self.pause_after_refusal)
            elif self.pause_between:
                await asyncio.sleep(self.pause_between)

    async def submit(self, http: aiohttp.ClientSession, key: str) -> Answer:
        loop = asyncio.get_running_loop()
        sent = loop.time()
        body = self.task(key) if self.task else {"type": "diag.echo", "payload": {"message": key}}
        task_id: str | None = None
        status: int | None = None
        code: str | None = None
        retry_after: str | None = None
        try:
            async with http.post(f"{self.base_url}/v1/tasks", json=body) as response:
                status = response.status
                if status == 202:
                    task_id = (await response.json())["id"]
                else:
                    code = _problem_code(await response.read())
                    retry_after = response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError):
            told = Told.UNKNOWN
        else:
            told = {202: Told.ACCEPTED, 503: Told.REFUSED, 429: Told.REFUSED}.get(
                status, Told.OTHER
            )
        answer = Answer(key, told, status, sent, loop.time(), task_id, code, retry_after)
        self.ledger.tell(answer)
        return answer


def _problem_code(body: bytes) -> str | None:
    try:
        problem = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    code = problem.get("code") if isinstance(problem, dict) else None
    return code if isinstance(code, str) else None


async def declare_topology(settings: Settings, queues: tuple[str, ...] = ("diag",)) -> None:
    """Declare what the gateway would, so a test can publish before any Warren process runs."""
    connection = await aio_pika.connect(settings.broker_url)
    async with connection:
        channel = await connection.channel()
        await topology.declare(channel, topology.build(settings, queues))


async def publish_confirmed(
    settings: Settings, ledger: Ledger, envelopes: list[Envelope], batch: int = 100
) -> None:
    """Publish first attempts straight to the work exchange; each confirm goes in the ledger."""
    connection = await aio_pika.connect(settings.broker_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(topology.Names(settings.namespace).work_exchange)
        for start in range(0, len(envelopes), batch):
            chunk = envelopes[start : start + batch]
            await asyncio.gather(
                *(
                    exchange.publish(e.to_message(), routing_key=e.queue, mandatory=True)
                    for e in chunk
                )
            )
            for e in chunk:
                ledger.confirmed(e.id)
