"""``warren gateway`` with ``http_workers=2``: real processes sharing one port (SO_REUSEPORT),
on the PostgreSQL store; stopped together by SIGTERM, or together when one of them dies."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import Spawn
from tests.processes import Child, free_port, ready, until
from tests.support import POSTGRES_URL, postgres_schema

INSTANCE = re.compile(rb'^target_info\{.*service_instance_id="[^"]*:(\d+)"', re.M)
ACCEPTED = re.compile(rb'^warren_submissions_total\{[^}]*outcome="accepted"[^}]*\} (\S+)', re.M)


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A schema of its own on the local PostgreSQL, dropped afterwards."""
    async with postgres_schema() as url:
        yield url


async def start_workers(spawn: Spawn, postgres_url: str) -> tuple[Child, str]:
    port = free_port()
    gateway = spawn("gateway", "--port", str(port), http_workers=2, store_url=postgres_url)
    url = f"http://127.0.0.1:{port}"
    await gateway.wait_log("gateway: 2 workers", within=20)
    async with aiohttp.ClientSession() as http:
        await ready(http, f"{url}/readyz", gateway, within=30)
    # Each worker logs once it listens: both must, not just the one that answered.
    await gateway.wait_log("gateway listening", count=2, within=30)
    return gateway, url


def worker_pids(gateway: Child) -> set[int]:
    """The supervisor's children, from /proc (the supervisor names them in its log too)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == gateway.pid:
            found.add(int(stat.parent.name))
    return found


async def fresh(method: str, url: str, **kwargs: Any) -> tuple[int, bytes]:
    """One request on a new connection: the kernel picks a worker per connection."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        http.request(method, url, **kwargs) as response,
    ):
        return response.status, await response.read()


async def test_two_workers_serve_one_port_and_stop_together_on_sigterm(
    spawn: Spawn, postgres_url: str
) -> None:
    gateway, url = await start_workers(spawn, postgres_url)
    pids = worker_pids(gateway)
    assert len(pids) == 2 and gateway.pid not in pids

    # When 20 tasks are submitted, each over its own connection
    ids = []
    for i in range(20):
        body = {"type": "diag.echo", "payload": {"message": f"m{i}"}}
        status, text = await fresh("POST", f"{url}/v1/tasks", json=body)
        assert status == 202, text
        ids.append(orjson.loads(text)["id"])

    # Then both workers served some: each one's /metrics counts its own, and they add up
    accepted: dict[int, float] = {}
    for _ in range(40):
        _, metrics = await fresh("GET", f"{url}/metrics")
        pid = int(INSTANCE.search(metrics)[1])  # type: ignore[index]
        accepted[pid] = sum(float(v) for v in ACCEPTED.findall(metrics))
        if len(accepted) == 2:
            break
    assert set(accepted) == pids
    assert sum(accepted.values()) == 20 and all(n > 0 for n in accepted.values())

    # And every record is readable through any worker once its recorder wrote it
    for task_id in ids:
        for _ in range(50):
            status, text = await fresh("GET", f"{url}/v1/tasks/{task_id}")
            if status != 404:
                break
            await asyncio.sleep(0.1)
        assert status == 200, text
        assert orjson.loads(text)["status"] == "queued"

    # When the supervisor gets SIGTERM, every worker stops and it exits 0
    gateway.send(signal.SIGTERM)
    assert await gateway.exit_code(within=30) == 0
    await until(lambda: not gateway.group_alive(), 10, "the workers to exit", gateway)
    assert gateway.log().count("gateway stopped") == 2


async def test_a_dying_worker_stops_the_whole_gateway(spawn: Spawn, postgres_url: str) -> None:
    gateway, _ = await start_workers(spawn, postgres_url)
    victim, survivor = sorted(worker_pids(gateway))

    os.kill(victim, signal.SIGKILL)

    assert await gateway.exit_code(within=30) == 1
    await until(lambda: not gateway.group_alive(), 10, "the other worker to exit", gateway)
    assert f"(pid {victim}) exited (-9): stopping the others" in gateway.log()
    assert "gateway stopped" in gateway.log()  # the survivor drained, as on SIGTERM
    with pytest.raises(ProcessLookupError):
        os.kill(survivor, 0)


@pytest.mark.parametrize(
    ("overrides", "refusal"),
    [
        ({}, "needs the PostgreSQL store"),
        ({"store_url": POSTGRES_URL, "port": "0"}, "needs a fixed http_port"),
    ],
)
async def test_several_workers_refuse_what_they_cannot_serve(
    spawn: Spawn, overrides: dict[str, str], refusal: str
) -> None:
    port = overrides.pop("port", str(free_port()))
    gateway = spawn("gateway", "--port", port, http_workers=2, **overrides)
    assert await gateway.exit_code(within=20) != 0
    assert refusal in gateway.log()
