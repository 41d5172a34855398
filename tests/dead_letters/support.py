"""Helpers of the dead-letter tests: tasks made to die, and reads through the API."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

Gateway = TestClient[Any, Any]


async def submit(gateway: Gateway, body: dict[str, Any]) -> str:
    response = await gateway.post("/v1/tasks", json=body)
    assert response.status == 202, await response.text()
    task_id: str = (await response.json())["id"]
    return task_id


async def get_json(
    gateway: Gateway, path: str, status: int = 200, headers: dict[str, str] | None = None
) -> Any:
    response = await gateway.get(path, headers=headers)
    assert response.status == status, await response.text()
    return await response.json()


async def post_json(gateway: Gateway, path: str, body: Any, status: int = 200) -> Any:
    response = await gateway.post(path, json=body)
    assert response.status == status, await response.text()
    return await response.json()


async def all_dead(
    gateway: Gateway, query: str = "", limit: int = 500, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Every dead letter matching ``query``, page after page."""
    items: list[dict[str, Any]] = []
    cursor = ""
    while True:
        path = f"/v1/dead-letters?limit={limit}{query}{cursor}"
        page = await get_json(gateway, path, headers=headers)
        items += page["items"]
        if page["next_cursor"] is None:
            return items
        cursor = f"&cursor={page['next_cursor']}"


async def wait_dead(
    gateway: Gateway, count: int, query: str = "", headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Wait until ``count`` dead letters are kept (the keeper moves them from the broker)."""
    async with asyncio.timeout(30):
        while len(items := await all_dead(gateway, query, headers=headers)) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    return items


async def wait_status(gateway: Gateway, ids: list[str], status: str) -> list[dict[str, Any]]:
    """The records of ``ids`` once every one has ``status``."""
    async with asyncio.timeout(30):
        while True:
            records = [await get_json(gateway, f"/v1/tasks/{i}") for i in ids]
            if all(r["status"] == status for r in records):
                return records
            await asyncio.sleep(0.1)
