"""The store keeps up: 1,000 tasks submitted, every one recorded as succeeded, in seconds.

Gateway and consumer run as real processes (as deployed), so that the test
process only submits and the pipeline has both cores.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.conftest import Spawn, make_settings
from tests.processes import free_port
from tests.store.support import eventually
from warren.service.settings import Settings
from warren.service.store import TaskStore
from warren.service.store.model import Status

TASKS = 1000


@pytest.fixture
def settings(store_url: str) -> Settings:
    """Patient confirms: on a busy CI machine a 2 s confirm timeout would fail a submission."""
    return make_settings(store_url=store_url, publish_timeout_seconds=15, http_port=free_port())


@pytest.mark.slow
async def test_a_thousand_tasks_all_reach_succeeded_in_the_store(
    spawn: Spawn, settings: Settings, store: TaskStore
) -> None:
    gateway = spawn("gateway")
    consumer = spawn("consume", "--queue", "diag", "--concurrency", "64")
    await gateway.wait_log("gateway listening")
    await consumer.wait_log("consuming")
    base = f"http://127.0.0.1:{settings.http_port}"
    started = time.monotonic()
    limit = asyncio.Semaphore(48)

    async def submit(http: aiohttp.ClientSession, i: int) -> str:
        async with limit, http.post("/v1/tasks", json=_body(i)) as response:
            assert response.status == 202, await response.text()
            return str((await response.json())["id"])

    async with aiohttp.ClientSession(base) as http:
        ids = await asyncio.gather(*(submit(http, i) for i in range(TASKS)))
    submitted = time.monotonic() - started

    async def all_succeeded() -> bool:
        return (await store.counts()).get(Status.SUCCEEDED, 0) == TASKS

    await eventually(all_succeeded, timeout=100, every=0.05)
    recorded = time.monotonic() - started
    assert len(set(ids)) == TASKS
    assert await store.counts() == {Status.SUCCEEDED: TASKS}
    print(
        f"\n{TASKS} tasks: submitted in {submitted:.2f}s, "
        f"every one succeeded in the store after {recorded:.2f}s"
    )


def _body(i: int) -> dict[str, object]:
    return {"type": "diag.echo", "payload": {"message": str(i)}}
