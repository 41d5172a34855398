"""Handlers' outbound HTTP reaches public addresses only (SSRF), unless the setting allows more.

Real receivers on 127.0.0.1 stand for what an attacker would aim at inside the
network (cloud metadata, an admin API): with the guard on, a task aimed there is
dead-lettered with the reason and the receiver never sees a request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from examples.demo.handlers.webhook import deliver
from tests.conftest import StartConsumer, make_settings
from tests.handlers.test_media import make_thumbnail
from tests.handlers.test_webhook import make_ctx, payload
from tests.support import Events
from warren.consumers import outbound
from warren.consumers.context import Resources
from warren.service.errors import Permanent
from warren.service.settings import Settings


@pytest.fixture
async def inside() -> AsyncIterator[tuple[list[str], str]]:
    """A server on 127.0.0.1 (an internal service); the paths it was asked for."""
    asked: list[str] = []

    async def record(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.Response(text="internal")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield asked, str(server.make_url("/"))
    await server.close()


@pytest.fixture
async def guarded() -> AsyncIterator[Resources]:
    resources = Resources(allow_private=False)
    yield resources
    await resources.close()


async def test_a_webhook_to_an_internal_address_is_permanent_and_never_sent(
    inside: tuple[list[str], str], guarded: Resources
) -> None:
    asked, base = inside
    for url in (f"{base}hook", base.replace("127.0.0.1", "localhost") + "hook"):
        with pytest.raises(Permanent, match="non-public address"):
            await deliver.fn(payload(url), make_ctx(guarded))
    assert asked == []


@pytest.mark.parametrize(
    "host",
    ["169.254.169.254", "10.0.0.7", "192.168.1.1", "100.64.0.1", "[::1]", "[::ffff:127.0.0.1]",
     "0.0.0.0", "[fe80::1]"],
)  # fmt: skip
async def test_internal_ip_literals_are_refused_before_any_connection(
    host: str, guarded: Resources
) -> None:
    with pytest.raises(Permanent, match="non-public address"):
        await deliver.fn(payload(f"http://{host}/latest/meta-data/"), make_ctx(guarded))


async def test_a_thumbnail_source_inside_is_refused(
    inside: tuple[list[str], str], guarded: Resources, tmp_path: Path
) -> None:
    asked, base = inside
    with pytest.raises(Permanent, match="non-public address"):
        await make_thumbnail(f"{base}secret.png", tmp_path, guarded)
    assert asked == []


async def test_the_socket_guard_stops_what_the_check_never_saw(
    inside: tuple[list[str], str],
) -> None:
    """A redirect inward or a name that resolves differently the second time (DNS
    rebinding) gets past ``check_destination``; the connection itself is refused."""
    asked, base = inside
    async with outbound.client_session(allow_private=False) as http:
        with pytest.raises(aiohttp.ClientConnectorError) as refused:
            await http.get(f"{base}after-a-redirect")
    assert isinstance(refused.value.os_error, outbound.ForbiddenDestination)
    assert asked == []


def test_what_counts_as_public() -> None:
    assert outbound.is_public("93.184.216.34") and outbound.is_public("2606:2800:220:1::1")
    inside = ("127.0.0.1", "10.1.2.3", "172.16.0.1", "169.254.169.254", "100.64.0.1",
              "192.0.2.1", "::1", "fc00::1", "::ffff:10.0.0.1", "224.0.0.1",
              "fe80::1%eth0")  # fmt: skip
    for address in inside:
        assert not outbound.is_public(address), address


async def test_a_consumer_dead_letters_a_webhook_aimed_inside_with_the_reason(
    inside: tuple[list[str], str],
    gateway: TestClient[Any, Any],
    start_consumer: StartConsumer,
    events: Events,
    settings: Settings,
) -> None:
    """Through the real pipeline, with the production default (no private networks)."""
    asked, base = inside
    production = make_settings(
        namespace=settings.namespace,
        store_url=settings.store_url,
        outbound_allow_private_networks=False,
    )
    await start_consumer("webhooks", settings_=production)
    body = {"type": "webhook.deliver", "payload": {"url": f"{base}hook", "event": "x", "data": {}}}
    response = await gateway.post("/v1/tasks", json=body)
    assert response.status == 202
    final = await events.final((await response.json())["id"])
    assert (final["status"], final["reason"], final["attempt"]) == ("dead", "permanent", 1)
    assert "non-public address" in final["error"]
    assert asked == []
