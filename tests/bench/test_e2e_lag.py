"""The end-to-end benchmark's store-lag probe: which tasks it asks for, and what it costs."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from warren.service.bench.e2e_lag import MAX_IN_FLIGHT, SAMPLE_EVERY, LagProbe
from warren.service.bench.procs import free_port


class TaskApi:
    """A task API that answers a long-poll once the test releases it: a record written."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.written = asyncio.Event()
        self.all_open = asyncio.Event()  # as many long-polls open as the probe allows

    async def get(self, request: web.Request) -> web.Response:
        self.asked.append(request.match_info["id"])
        if len(self.asked) >= MAX_IN_FLIGHT:
            self.all_open.set()
        await self.written.wait()
        return web.json_response({"id": request.match_info["id"], "status": "succeeded"})


@pytest.fixture
async def api() -> AsyncIterator[tuple[TaskApi, str]]:
    fake = TaskApi()
    app = web.Application()
    app.router.add_get("/v1/tasks/{id}", fake.get)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield fake, f"http://127.0.0.1:{port}"
    fake.written.set()
    await runner.cleanup()


async def test_one_task_in_so_many_is_asked_for_with_a_bounded_number_open(
    api: tuple[TaskApi, str],
) -> None:
    fake, base = api
    probe = LagProbe(base)
    # Given a paced window whose events arrive while no record is written yet
    probe.start()
    arrivals = SAMPLE_EVERY * (MAX_IN_FLIGHT + 2)
    for i in range(arrivals):
        probe.arrived(f"task-{i}", 0.0)
    await fake.all_open.wait()
    # When the store writes them
    fake.written.set()
    figures = await probe.stop()
    # Then every SAMPLE_EVERY-th task was asked for, at most MAX_IN_FLIGHT at once, and
    # the samples due while that many were open are counted as skipped, not lost
    assert fake.asked == [f"task-{SAMPLE_EVERY * k - 1}" for k in range(1, MAX_IN_FLIGHT + 1)]
    assert figures["store lag samples"] == MAX_IN_FLIGHT
    assert figures["store lag skipped"] == 2
    assert figures["store lag p50"] > 0


async def test_outside_a_window_nothing_is_asked_for(api: tuple[TaskApi, str]) -> None:
    fake, base = api
    probe = LagProbe(base)
    for i in range(SAMPLE_EVERY * 2):
        probe.arrived(f"task-{i}", 0.0)
    figures = await probe.stop()
    assert fake.asked == []
    assert math.isnan(figures["store lag p50"])
