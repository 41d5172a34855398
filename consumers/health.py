"""A consumer's small HTTP side: ``/healthz``, ``/readyz`` and ``/metrics`` for probes and scrapes.

Readiness means "attached and able to settle": both broker connections up and
the consumer registered. A consumer that silently lost its consumer after a
reconnect would still be alive but not ready, which is what a probe should see.
The server starts before the consumer connects: while the broker is away at
start-up, ``/healthz`` is 200 and ``/readyz`` 503, as after a connection loss.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from warren.service.errors import ConfigurationError
from warren.service.telemetry import prometheus_text


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def metrics(_request: web.Request) -> web.Response:
    body, content_type = prometheus_text()
    return web.Response(body=body, headers={"Content-Type": content_type})


class HealthServer:
    def __init__(self, ready: Callable[[], bool], host: str, port: int) -> None:
        self._ready = ready
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None

    async def readyz(self, _request: web.Request) -> web.Response:
        ready = self._ready()
        return web.json_response(
            {"status": "ready" if ready else "not ready"}, status=200 if ready else 503
        )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self._host, self._port).start()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot serve /healthz on {self._host}:{self._port} ({exc.strerror or exc}): "
                "set WARREN_HEALTH_PORT (--health-port) to a free port, 0 for none"
            ) from None

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
