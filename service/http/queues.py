"""``GET /v1/queues``: each app queue's depths, dead letters and rates (``read`` or ``admin``).

The broker's counts come over AMQP (passive declares on the dead-letter
keeper's connection), the rest from the store: see ``warren.service.queues``.
"""

from __future__ import annotations

from aio_pika.exceptions import AMQPError
from aiohttp import web

from warren.service.http.dead_letters import DEAD_STORE, KEEPER
from warren.service.http.task_records import json_response
from warren.service.http.task_store import STORE, store_problem
from warren.service.queues import queue_states
from warren.service.store.db import StoreUnavailable


async def list_queues(request: web.Request) -> web.Response:
    """The queues, with ``ready``/``consumers`` null while the broker is not linked."""
    app = request.app
    keeper = app[KEEPER]
    connection = keeper.connection
    if connection is not None and not connection.connected.is_set():
        connection = None
    try:
        states = await queue_states(keeper.shape, connection, app[STORE], app[DEAD_STORE])
    except StoreUnavailable as exc:
        raise store_problem(exc) from None
    except (AMQPError, ConnectionError):
        states = await queue_states(keeper.shape, None, app[STORE], app[DEAD_STORE])
    return json_response({"queues": [s.to_json() for s in states]})
