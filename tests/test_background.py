"""Background loops restart after a crash and are reported unhealthy meanwhile."""

from __future__ import annotations

import asyncio

import pytest

from warren.service import background
from warren.service.background import Background


async def test_a_crashed_loop_is_restarted_and_unhealthy_until_it_runs_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(background, "HEALTHY_AFTER_SECONDS", 0.3)
    runs: list[int] = []
    steady = asyncio.Event()

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise ConnectionError("the channel closed under me")
        steady.set()
        await asyncio.Event().wait()  # runs for good

    tasks = Background()
    tasks.start("writer", flaky)
    await asyncio.wait_for(steady.wait(), 5)
    assert tasks.crashes("writer") == 1 and not tasks.healthy
    await asyncio.sleep(0.4)
    assert tasks.healthy
    await tasks.close()
    writer = tasks.task("writer")
    assert writer is not None and writer.cancelled()


async def test_a_loop_that_returns_is_done_not_restarted() -> None:
    calls = 0

    async def once() -> None:
        nonlocal calls
        calls += 1

    tasks = Background()
    tasks.start("once", once)
    await asyncio.sleep(0.05)
    assert calls == 1 and tasks.healthy
    await tasks.close()
