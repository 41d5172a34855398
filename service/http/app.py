"""``create_app(settings)``: the gateway as an aiohttp application.

The broker connection is a ``cleanup_ctx`` resource: one robust connection and
one confirming channel for the whole process, opened at start-up (declaring
the topology of every known queue, so a submission is routable before any
consumer runs) and closed at shutdown. No request opens a connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from service import topology
from service.amqp import Publisher, connect
from service.contracts import Catalog
from service.http import views
from service.http.keys import CATALOG, PUBLISHER, SETTINGS
from service.http.problems import problem_middleware
from service.http.task_views import add_task_routes
from service.settings import Settings
from service.tasks import CATALOG as DEFAULT_CATALOG
from service.telemetry import setup_telemetry


async def broker(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    connection = await connect(settings, "gateway")
    try:
        shape = topology.build(settings, app[CATALOG].queues)
        app[PUBLISHER] = await Publisher.open(connection, shape, settings.publish_timeout_seconds)
        yield
    finally:
        await connection.close()


def create_app(settings: Settings, catalog: Catalog = DEFAULT_CATALOG) -> web.Application:
    # Instruments aiohttp: the contrib middleware inserted first makes each SERVER span
    # (HTTP semantic conventions, a caller's valid traceparent continued).
    setup_telemetry(settings, "gateway")
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[problem_middleware])
    app[SETTINGS] = settings
    app[CATALOG] = catalog
    app.cleanup_ctx.append(broker)
    app.router.add_post("/v1/tasks", views.submit_task)
    app.router.add_get("/v1/task-types", views.task_types)
    app.router.add_get("/healthz", views.healthz)
    app.router.add_get("/readyz", views.readyz)
    app.router.add_get("/metrics", views.metrics)
    add_task_routes(app)  # after `broker`: the store's resources start after, stop before it
    return app
