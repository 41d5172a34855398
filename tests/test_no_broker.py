"""Without its broker a process still serves its probes; it is ready as soon as the broker is.

What an orchestrator relies on: a gateway or consumer started before RabbitMQ
(or while it restarts) is alive (``/healthz`` 200), not ready (``/readyz``
503), and a submission gets a 503 ``broker-unavailable`` with ``Retry-After``,
never a hang or a crash loop. Real processes, pointed at a closed port or at a
TCP proxy to the real broker that is opened later.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.conftest import BROKER_URL, Spawn
from tests.processes import Child, free_port, ready
from tests.support import TcpProxy
from warren.service.settings import Settings

pytestmark = pytest.mark.slow
ECHO = {"type": "diag.echo", "payload": {"message": "hi"}}


@pytest.fixture
async def closed_proxy() -> AsyncIterator[TcpProxy]:
    """A proxy to the real broker whose port refuses connections until ``start()``."""
    proxy = TcpProxy("127.0.0.1", int(BROKER_URL.rsplit(":", 1)[1].split("/")[0]))
    proxy.port = free_port()
    yield proxy
    await proxy.cut()


def via(port: int, password: str = "guest") -> str:
    return f"amqp://guest:{password}@127.0.0.1:{port}/"


def start(spawn: Spawn, role: str, broker_url: str, **overrides: Any) -> tuple[Child, str]:
    """A gateway or a consumer of diag; the base URL of its probes."""
    port = free_port()
    if role == "gateway":
        proc = spawn("gateway", "--port", str(port), broker_url=broker_url, **overrides)
    else:
        args = ("consume", "--queue", "diag", "--health-port", str(port))
        proc = spawn(*args, broker_url=broker_url, **overrides)
    return proc, f"http://127.0.0.1:{port}"


async def status(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> int:
    async with http.request(method, url, **kwargs) as response:
        return response.status


@pytest.mark.parametrize("role", ["gateway", "consumer"])
async def test_without_broker_the_probes_answer_alive_and_not_ready(
    spawn: Spawn, role: str
) -> None:
    proc, base = start(spawn, role, via(free_port()))
    async with aiohttp.ClientSession() as http:
        await ready(http, f"{base}/healthz", proc, within=20)
        await proc.wait_log("no broker yet")
        async with http.get(f"{base}/readyz") as response:
            assert response.status == 503
        assert await status(http, "GET", f"{base}/metrics") == 200

    proc.send(signal.SIGTERM)
    assert await proc.exit_code(within=5) == 0, proc.log()


async def test_without_broker_a_submission_is_503_broker_unavailable(
    spawn: Spawn, settings: Settings
) -> None:
    gateway, base = start(spawn, "gateway", via(free_port()))
    async with aiohttp.ClientSession() as http:
        await ready(http, f"{base}/healthz", gateway, within=20)
        async with http.post(f"{base}/v1/tasks", json=ECHO) as response:
            assert response.status == 503
            assert response.content_type == "application/problem+json"
            assert response.headers["Retry-After"] == str(settings.retry_after_seconds)
            assert (await response.json())["code"] == "broker-unavailable"
        async with http.get(f"{base}/readyz") as response:
            assert response.status == 503
            assert (await response.json())["code"] == "not-ready"


@pytest.mark.parametrize("role", ["gateway", "consumer"])
async def test_ready_as_soon_as_the_broker_answers(
    spawn: Spawn, closed_proxy: TcpProxy, role: str
) -> None:
    # Given a process whose broker refuses connections
    proc, base = start(spawn, role, via(closed_proxy.port))
    async with aiohttp.ClientSession() as http:
        await ready(http, f"{base}/healthz", proc, within=20)
        await proc.wait_log("no broker yet")
        assert await status(http, "GET", f"{base}/readyz") == 503

        # When the broker answers, it is ready within its retry interval (2 s), not restarted
        await closed_proxy.start()
        await ready(http, f"{base}/readyz", proc, within=2 + 5)
        if role == "gateway":
            assert await status(http, "POST", f"{base}/v1/tasks", json=ECHO) == 202
    proc.send(signal.SIGTERM)
    assert await proc.exit_code(within=10) == 0, proc.log()


@pytest.mark.parametrize("role", ["gateway", "consumer"])
async def test_a_broker_refusing_the_user_once_it_answers_stops_the_process(
    spawn: Spawn, closed_proxy: TcpProxy, role: str
) -> None:
    proc, base = start(spawn, role, via(closed_proxy.port, "wrong"), log_level="ERROR")
    async with aiohttp.ClientSession() as http:
        await ready(http, f"{base}/healthz", proc, within=20)

    await closed_proxy.start()

    assert await proc.exit_code(within=10) == 2
    [line] = proc.log().splitlines()
    assert line.startswith(f"warren {'gateway' if role == 'gateway' else 'consume'}: ")
    assert "refused user 'guest'" in line and "WARREN_BROKER_URL" in line
