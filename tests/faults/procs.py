"""Gateways and consumers under test, as real processes pointed at a private node.

Why processes: what a fault tests lives in process death, reconnect loops and
the broker's requeue of a dead connection's deliveries, which an in-process
object sharing the test's event loop would not show faithfully. Each child
builds its settings from ``WARREN_*`` variables (``Settings.child_environment``,
as ``warren`` does in production), runs in its own session so it and anything
it starts can be killed as a group by PID, and writes its output to a file the
assertions show.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aio_pika
import aiohttp
from aio_pika.exceptions import AMQPError

from warren.service.bench.procs import Proc, free_port
from warren.service.settings import Settings

__all__ = ["Proc", "Spawner", "free_port"]  # the fault tests import them from here


class Spawner:
    """Starts children from settings; ``kill_all`` (at teardown) SIGKILLs every one by PID."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Proc] = []

    def python(self, *args: str, env: dict[str, str], name: str) -> Proc:
        log = self.log_dir / f"{len(self.children):02d}-{name}.log"
        child = Proc([sys.executable, *args], log, env, pipe=False)
        self.children.append(child)
        return child

    def consumer(
        self, settings: Settings, concurrency: int = 4, queue: str = "diag", prefetch: int = 0
    ) -> Proc:
        """A consumer whose prefetch is ``concurrency`` unless given: the scenarios' bounds on
        re-runs are counted in prefetch windows, so each scenario fixes its window."""
        return self.python(
            "-m",
            "warren",
            "consume",
            "--queue",
            queue,
            "--concurrency",
            str(concurrency),
            env=settings.child_environment(consumer_prefetch=prefetch or concurrency),
            name=f"consume-{queue}",
        )

    def gateway(self, settings: Settings) -> Proc:
        return self.python(
            "-m", "warren", "gateway", env=settings.child_environment(), name="gateway"
        )

    def kill_all(self) -> None:
        for child in self.children:
            child.kill_group()

    def logs(self) -> str:
        """The tail of every child's log, for an assertion message."""
        return "\n".join(
            f"--- {c.argv[-4:]} pid {c.pid} ---\n{c.tail(2000)}" for c in self.children
        )


async def until(
    predicate: Callable[[], bool] | Callable[[], Awaitable[bool]],
    within: float,
    what: str,
    every: float = 0.1,
    explain: Callable[[], str] | None = None,
) -> None:
    """Poll ``predicate`` (sync or async) until true; past ``within`` seconds, fail saying why."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            detail = f"\n{explain()}" if explain else ""
            raise AssertionError(f"waited {within}s for {what}{detail}")
        await asyncio.sleep(every)


async def queue_state(url: str, queue: str) -> tuple[int, int] | None:
    """(ready messages, consumers) of a queue asked of the broker now; None if unreachable.

    A fresh, plain connection each time: a robust channel's passive declare
    answers from its cache, and a fault may have closed any older connection.
    """
    try:
        async with asyncio.timeout(5):
            connection = await aio_pika.connect(url)
            async with connection:
                channel = await connection.channel()
                ok = await (await channel.get_underlay_channel()).queue_declare(queue, passive=True)
    except (AMQPError, OSError, TimeoutError):
        return None
    assert ok.message_count is not None and ok.consumer_count is not None
    return ok.message_count, ok.consumer_count


async def wait_consumers(
    url: str, queue: str, count: int, within: float, spawner: Spawner | None = None
) -> None:
    """Until ``queue`` has exactly ``count`` consumers attached (re-attached after a fault)."""

    async def attached() -> bool:
        state = await queue_state(url, queue)
        return state is not None and state[1] == count

    await until(
        attached,
        within,
        f"{count} consumers on {queue}",
        every=0.25,
        explain=spawner.logs if spawner else None,
    )


async def wait_drained(url: str, queue: str, within: float, spawner: Spawner | None = None) -> None:
    async def empty() -> bool:
        state = await queue_state(url, queue)
        return state is not None and state[0] == 0

    await until(
        empty, within, f"{queue} drained", every=0.25, explain=spawner.logs if spawner else None
    )


async def wait_http_ready(base_url: str, proc: Proc, within: float) -> None:
    """Poll the gateway's ``/readyz`` until 200 (its broker connection is up)."""

    async def ready() -> bool:
        assert proc.alive(), f"gateway exited early:\n{proc.tail()}"
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"{base_url}/readyz", timeout=aiohttp.ClientTimeout(total=2)) as response,
            ):
                return response.status == 200
        return False

    await until(ready, within, f"{base_url}/readyz", every=0.2, explain=proc.tail)


def gateway_url(settings: Settings) -> str:
    return f"http://{settings.http_host}:{settings.http_port}"
