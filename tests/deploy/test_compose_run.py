"""compose.yaml run for real, without Docker: its Warren services against this machine's RabbitMQ.

Each Warren service of the file is started as Docker would start it: the
image's entry point (``warren``) with the service's ``command``, and the
image's ``ENV`` overlaid with the service's ``environment``. What Docker's
network would do is done by hand, and only that: the other services' host
names (rabbitmq, jaeger, smtp, postgres) become 127.0.0.1, ports become free
ones so parallel runs never collide, the namespace becomes the test's own, and
the OTLP endpoint is dropped (there is no Jaeger here; the test asserts the
file sets it). Then the services' own healthchecks run, one task of every
queue goes through the gateway and must succeed, the dashboard's metrics must
be on the services' /metrics, and SIGTERM must stop every process with exit 0.
This proves the file's wiring (commands, variable names, ports, probes), not
just its syntax.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import aiohttp
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from PIL import Image

from examples.demo.handlers.webhook import verify
from tests.conftest import BROKER_URL
from tests.demo import CATALOG
from tests.deploy.common import (
    REPO,
    demo_settings_from,
    json_array,
    parse_command,
    read_dockerfile,
    settings_from,
)
from tests.deploy.test_compose import service_env, warren_services
from tests.deploy.test_grafana import HISTOGRAM_SERIES, dashboard_metrics
from tests.support import Events, capture_events
from warren.service import topology
from warren.service.http.auth import DEV_TOKEN
from warren.service.settings import Settings

pytestmark = pytest.mark.slow

OTHER_SERVICES = ("rabbitmq", "jaeger", "smtp", "postgres")
HOST_NAME = re.compile(rf"(?<![\w.-])({'|'.join(OTHER_SERVICES)})(?![\w-])")
# Exported only once something happens that a healthy run does not do (a consumer dying).
NEEDS_A_FAILURE = {"warren_redeliveries_total"}
STOP_WITHIN = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def entry_point() -> list[str]:
    """The image's ENTRYPOINT, resolved to the same console script in this virtualenv."""
    [entrypoint] = read_dockerfile().final.all("ENTRYPOINT")
    assert json_array(entrypoint) == ["warren"]
    script = Path(sys.executable).parent / "warren"
    assert script.exists(), "the warren console script is installed with the project"
    return [str(script)]


@dataclass
class Service:
    """One compose service as a local process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    probe_port: int
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self, cwd: Path) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("WARREN_")}
        with self.log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                self.argv,
                env={**base, **self.env},
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self.popen is not None
        return self.popen

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)


def as_local_process(
    name: str, compose_service: dict[str, Any], namespace: str, tmp_path: Path, smtp_port: int
) -> Service:
    """The service's command and environment, with only Docker's network redone by hand."""
    env = {k: HOST_NAME.sub("127.0.0.1", v) for k, v in service_env(compose_service).items()}
    # Traces: the file must send them to Jaeger; here nothing listens, so no exporter.
    otel = env.pop("WARREN_OTEL_ENDPOINT", None)
    assert otel == "http://127.0.0.1:4318", f"{name}: WARREN_OTEL_ENDPOINT {otel!r}"
    broker = urlsplit(env["WARREN_BROKER_URL"])
    assert broker.hostname == "127.0.0.1", env["WARREN_BROKER_URL"]
    if os.environ.get("WARREN_TEST_BROKER_URL"):
        env["WARREN_BROKER_URL"] = BROKER_URL
    # "Every interface of the container" is this machine's loopback here.
    assert env["WARREN_HTTP_HOST"] == "0.0.0.0"
    env["WARREN_HTTP_HOST"] = "127.0.0.1"
    env["WARREN_NAMESPACE"] = namespace
    assert env["DEMO_SMTP_HOST"] == "127.0.0.1"
    env["DEMO_SMTP_PORT"] = str(smtp_port)
    media = tmp_path / "media"
    env["DEMO_MEDIA_ROOT"] = str(media)
    # The image finds the example app on its PYTHONPATH; here it is the repository.
    env["PYTHONPATH"] = str(REPO)
    args = parse_command(compose_service["command"])
    port = free_port()
    if args.command == "gateway":
        assert "WARREN_HTTP_PORT" in env
        env["WARREN_HTTP_PORT"] = str(port)
    else:
        assert "WARREN_HEALTH_PORT" in env
        env["WARREN_HEALTH_PORT"] = str(port)
    argv = [*entry_point(), *compose_service["command"]]
    return Service(name, argv, env, port, tmp_path / f"{name}.log")


class Mailbox:
    """aiosmtpd handler: the compose file's SMTP catcher, played by a local server."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(  # aiosmtpd calls its hooks by these names
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@dataclass
class Receiver:
    """A webhook receiver on this machine: records every request it gets."""

    url: str
    requests: list[tuple[dict[str, str], bytes]]


@contextlib.asynccontextmanager
async def webhook_receiver() -> AsyncIterator[Receiver]:
    received: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.read()))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield Receiver(f"http://127.0.0.1:{port}/hook", received)
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[int, Mailbox]]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, mailbox
    finally:
        controller.stop()


async def ready(http: aiohttp.ClientSession, service: Service, within: float = 40) -> None:
    """Poll the service's /readyz (the port its compose healthcheck probes) until 200."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    url = f"http://127.0.0.1:{service.probe_port}/readyz"
    while loop.time() < deadline:
        assert service.process.poll() is None, f"{service.name} exited:\n{service.log()}"
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{service.name} not ready within {within}s:\n{service.log()}")


async def run_healthcheck(service: Service, compose_service: dict[str, Any]) -> None:
    """The service's compose healthcheck command, with the venv's Python as the image's."""
    kind, program, *args = compose_service["healthcheck"]["test"]
    assert kind == "CMD" and program == "python"
    base = {k: v for k, v in os.environ.items() if not k.startswith("WARREN_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, env={**base, **service.env}, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=15)
    assert process.returncode == 0, f"{service.name} healthcheck failed: {stderr.decode()}"


async def scraped_metrics(http: aiohttp.ClientSession, service: Service) -> set[str]:
    url = f"http://127.0.0.1:{service.probe_port}/metrics"
    async with http.get(url) as response:
        assert response.status == 200, await response.text()
        text = await response.text()
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = re.split(r"[{ ]", line, maxsplit=1)[0]
            for suffix in HISTOGRAM_SERIES:
                name = name.removesuffix(suffix)
            names.add(name)
    return names


async def submit(http: aiohttp.ClientSession, base: str, type_: str, payload: Any) -> str:
    body = {"type": type_, "payload": payload}
    headers = {"Authorization": f"Bearer {DEV_TOKEN}"}  # compose.yaml configures the dev key
    async with http.post(f"{base}/v1/tasks", json=body, headers=headers) as r:
        assert r.status == 202, await r.text()
        accepted: dict[str, Any] = await r.json()
    task_id: str = accepted["id"]
    return task_id


async def stop_all(services: list[Service]) -> dict[str, int | None]:
    """SIGTERM every service at once, as ``docker compose stop`` does; their exit codes."""
    for service in services:
        service.process.send_signal(signal.SIGTERM)

    async def exit_code(service: Service) -> int | None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(service.process.wait, STOP_WITHIN)
        return service.process.poll()

    codes = await asyncio.gather(*(exit_code(s) for s in services))
    return {s.name: code for s, code in zip(services, codes, strict=True)}


async def test_compose_services_run_tasks_of_every_queue_and_stop_cleanly(
    tmp_path: Path,
) -> None:
    namespace = f"test-deploy-{uuid.uuid4().hex[:8]}"
    compose_services = warren_services()
    media = tmp_path / "media"
    media.mkdir()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(media / "in.png")
    with smtp_server() as (smtp_port, mailbox):
        services = [
            as_local_process(name, s, namespace, tmp_path, smtp_port)
            for name, s in sorted(compose_services.items())
        ]
        settings = settings_from(services[0].env)
        connection = await aio_pika.connect_robust(BROKER_URL)
        try:
            for service in services:
                service.start(cwd=tmp_path)
            async with connection, webhook_receiver() as receiver:
                channel = await connection.channel()
                events = await capture_events(channel, topology.Names(namespace))
                await exercise(services, compose_services, events, receiver, mailbox, settings)
                codes = await stop_all(services)
                assert codes == dict.fromkeys(codes, 0), {
                    s.name: s.log() for s in services if codes[s.name] != 0
                }
        finally:
            for service in services:
                service.kill()
            await delete_namespace(settings)


async def exercise(
    services: list[Service],
    compose_services: dict[str, dict[str, Any]],
    events: Events,
    receiver: Receiver,
    mailbox: Mailbox,
    settings: Settings,
) -> None:
    by_command = {s.name: parse_command(compose_services[s.name]["command"]) for s in services}
    [gateway] = [s for s in services if by_command[s.name].command == "gateway"]
    base = f"http://127.0.0.1:{gateway.probe_port}"
    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(ready(http, s) for s in services))
        await asyncio.gather(*(run_healthcheck(s, compose_services[s.name]) for s in services))
        consumers = [s for s in services if by_command[s.name].command == "consume"]
        assert {by_command[s.name].queue for s in consumers} == set(CATALOG.queues)
        # The scheduler follows its leader queue, over the gateway's own store.
        headers = {"Authorization": f"Bearer {DEV_TOKEN}"}
        async with http.get(f"{base}/v1/schedules", headers=headers) as response:
            assert response.status == 200
            assert [s["id"] for s in (await response.json())["items"]] == ["demo.heartbeat"]

        tasks = {
            "diag": await submit(http, base, "diag.echo", {"message": "from compose"}),
            "webhooks": await submit(
                http,
                base,
                "webhook.deliver",
                {"url": receiver.url, "event": "compose.check", "data": {"n": 1}},
            ),
            "email": await submit(
                http,
                base,
                "email.send",
                {"to": ["dev@example.test"], "subject": "compose", "text": "hello"},
            ),
            "media": await submit(
                http, base, "media.thumbnail", {"source": "in.png", "width": 8, "height": 8}
            ),
        }
        finals = {q: await events.final(task, timeout=30) for q, task in tasks.items()}
        assert {q: f["status"] for q, f in finals.items()} == dict.fromkeys(tasks, "succeeded")
        assert finals["diag"]["result"] == {"message": "from compose"}

        # The webhook was signed with the file's secret, and the mail reached "smtp".
        [(headers, body)] = receiver.requests
        demo = demo_settings_from(services[0].env)
        secret = demo.webhook_signing_secret.get_secret_value().encode()
        assert verify(
            secret, int(headers["X-Warren-Timestamp"]), body, headers["X-Warren-Signature"]
        )
        [mail] = mailbox.envelopes
        assert mail.rcpt_tos == ["dev@example.test"]

        # What the Grafana dashboard queries is what the services serve.
        scraped = set()
        for service in services:
            scraped |= await scraped_metrics(http, service)
        assert dashboard_metrics() - NEEDS_A_FAILURE <= scraped, scraped


async def delete_namespace(settings: Settings) -> None:
    connection = await aio_pika.connect_robust(BROKER_URL)
    async with connection:
        channel = await connection.channel()
        await topology.delete(channel, topology.build(settings, CATALOG.queues))
