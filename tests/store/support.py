"""Helpers of the task-store tests: submit, read through the API, wait for a condition."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from warren.service.http.task_store import RECORDER
from warren.service.recorder import Recorder

Client = TestClient[Any, Any]


async def submit(gateway: Client, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = await gateway.post("/v1/tasks", json=body, headers=headers)
    assert response.status in (200, 202), await response.text()
    accepted: dict[str, Any] = await response.json()
    return accepted


async def get_task(gateway: Client, task_id: str, wait: float = 0) -> dict[str, Any]:
    response = await gateway.get(f"/v1/tasks/{task_id}", params={"wait": str(wait)})
    assert response.status == 200, await response.text()
    record: dict[str, Any] = await response.json()
    return record


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 15, every: float = 0.02
) -> None:
    """Wait until ``check()`` is true (tests only: the service itself never polls)."""
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 - polling the API is what a test does
            await asyncio.sleep(every)


async def status_becomes(
    gateway: Client, task_id: str, status: str, timeout: float = 15
) -> dict[str, Any]:
    """The record once it has ``status`` (seen through the API)."""
    seen: dict[str, Any] = {}

    async def check() -> bool:
        response = await gateway.get(f"/v1/tasks/{task_id}")
        if response.status != 200:
            return False
        seen.update(await response.json())
        return bool(seen["status"] == status)

    await eventually(check, timeout)
    return seen


def recorder_of(gateway: Client) -> Recorder:
    server = gateway.server
    assert isinstance(server, TestServer) and isinstance(server.app, web.Application)
    return server.app[RECORDER]
