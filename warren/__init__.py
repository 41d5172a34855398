"""Warren: background tasks on RabbitMQ, submitted over HTTP, traced end to end.

Declare task types and their handlers in your own package::

    # myshop/tasks.py: contracts only; the gateway imports this module
    import warren

    class Receipt(warren.Payload):
        order_id: int

    send_receipt = warren.TaskContract("shop.send_receipt", "email", Receipt, max_attempts=8)
    app = warren.App(contracts=[send_receipt], handlers=["myshop.handlers"])

    # myshop/handlers.py: only consumers import this module
    @warren.handles(send_receipt)
    async def send(payload: Receipt, ctx: warren.TaskContext) -> dict[str, int]:
        ...  # raise warren.Retry(after=30) or warren.Permanent("why") to steer the outcome
        return {"order_id": payload.order_id}

Then ``warren dev --app myshop.tasks``, or ``warren gateway --app myshop.tasks`` and
``warren consume --app myshop.tasks --queue email``; submit from Python with
``warren.Client(url, token=...)`` (or ``warren.AsyncClient``)::

    with warren.Client("http://127.0.0.1:8080", token=TOKEN) as client:
        task = client.submit(send_receipt, Receipt(order_id=7))
        record = client.wait(task.id, timeout=30)
 Everything under
``warren.service`` (the gateway and what gateway and consumers share) and
``warren.consumers`` (the consumer runtime) is Warren's own machinery.
"""

from __future__ import annotations

from warren.client import (
    AsyncClient,
    BadRequest,
    Client,
    Conflict,
    ConnectionFailed,
    Forbidden,
    NotFound,
    ProblemError,
    RateLimited,
    ServerError,
    TaskFailed,
    Unauthorized,
    Unavailable,
    ValidationFailed,
    WaitTimeout,
    WarrenError,
)
from warren.consumers.context import TaskContext
from warren.consumers.registry import handles
from warren.service.apps import App
from warren.service.contracts import Backoff, Payload, TaskContract
from warren.service.errors import Permanent, Retry
from warren.service.schedules import Schedule

__all__ = [
    "App",
    "AsyncClient",
    "Backoff",
    "BadRequest",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "NotFound",
    "Payload",
    "Permanent",
    "ProblemError",
    "RateLimited",
    "Retry",
    "Schedule",
    "ServerError",
    "TaskContext",
    "TaskContract",
    "TaskFailed",
    "Unauthorized",
    "Unavailable",
    "ValidationFailed",
    "WaitTimeout",
    "WarrenError",
    "handles",
]
