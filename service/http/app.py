"""``create_app(settings)``: the gateway as an aiohttp application.

The broker connection is a ``cleanup_ctx`` resource: one robust connection and
one confirming channel for the whole process (declaring the topology of every
known queue, so a submission is routable before any consumer runs), closed at
shutdown. No request opens a connection. The gateway does not wait for its
broker: it serves as soon as the first attempt to connect succeeded or failed
(``BrokerLink``), and until the broker answers ``/healthz`` is 200, ``/readyz``
503 and a submission a 503 ``broker-unavailable`` with ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aio_pika.abc import AbstractRobustConnection
from aiohttp import web

from warren.service import topology
from warren.service.amqp import Publisher
from warren.service.apps import load_app
from warren.service.connections import BrokerLinks
from warren.service.contracts import Catalog
from warren.service.delays import CancelRelay
from warren.service.http import views
from warren.service.http.auth import Authenticator
from warren.service.http.batch import submit_batch
from warren.service.http.console import add_console_routes
from warren.service.http.dead_letters import add_dead_letter_routes
from warren.service.http.keys import BROKER, CATALOG, PUBLISHER, SETTINGS
from warren.service.http.middleware import gateway_middleware
from warren.service.http.openapi import serve_openapi
from warren.service.http.queues import list_queues
from warren.service.http.ratelimit import RATE_LIMITER, RateLimiter
from warren.service.http.schedules import add_schedule_routes
from warren.service.http.task_views import add_task_routes
from warren.service.settings import Settings
from warren.service.telemetry import setup_telemetry


async def broker(app: web.Application) -> AsyncIterator[None]:
    """Link up with the broker in the background; a refusal of our user fails start-up."""
    publisher, relay = app[PUBLISHER], CancelRelay(app[PUBLISHER])

    async def attach(connection: AbstractRobustConnection) -> None:
        await publisher.attach(connection)
        await relay.start(connection, publisher.topology)  # delayed cancellations, due

    link = app[BROKER].link("gateway", attach)
    try:
        await link.start()
        yield
    finally:
        await link.close()


def server_limits(settings: Settings) -> dict[str, Any]:
    """aiohttp's request-parser limits and idle timeout, as ``handler_args``: so they hold for
    every server of the app, ``warren gateway``'s runner and the tests' ``TestServer`` alike."""
    return {
        "max_line_size": settings.http_max_line_bytes,
        "max_field_size": settings.http_max_header_bytes,
        "max_headers": settings.http_max_headers,
        "keepalive_timeout": settings.http_keepalive_timeout_seconds,
    }


def create_app(settings: Settings, catalog: Catalog | None = None) -> web.Application:
    """The gateway of ``catalog``, by default that of the app ``settings.app`` names."""
    catalog = catalog or load_app(settings.app).catalog
    setup_telemetry(settings, "gateway")
    authenticator = Authenticator.from_settings(settings, catalog)  # no keys: start-up refused
    limiter = RateLimiter()  # the app holds it too: a batch spends per task
    app = web.Application(
        client_max_size=max(settings.max_body_bytes, settings.max_batch_body_bytes),
        middlewares=[gateway_middleware(settings, authenticator, limiter)],
        handler_args=server_limits(settings),
    )
    app[SETTINGS] = settings
    app[RATE_LIMITER] = limiter
    app[CATALOG] = catalog
    shape = topology.build(settings, catalog.queues)
    app[PUBLISHER] = Publisher(shape, settings.publish_timeout_seconds)
    app[BROKER] = BrokerLinks(settings)
    app.cleanup_ctx.append(broker)
    app.router.add_post("/v1/tasks", views.submit_task)
    app.router.add_post("/v1/tasks/batch", submit_batch)
    app.router.add_get("/v1/task-types", views.task_types)
    app.router.add_get("/healthz", views.healthz)
    app.router.add_get("/readyz", views.readyz)
    app.router.add_get("/metrics", views.metrics)
    app.router.add_get("/openapi.json", serve_openapi)
    add_task_routes(app)  # after `broker`: the store's resources start after, stop before it
    add_dead_letter_routes(app)  # after the store: the keeper writes into it
    app.router.add_get("/v1/queues", list_queues)
    add_console_routes(app)  # /console (open: no data in it) and its event stream
    add_schedule_routes(app, tuple(load_app(settings.app).schedules))
    return app
