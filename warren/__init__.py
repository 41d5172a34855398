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
``warren consume --app myshop.tasks --queue email``. Everything under
``warren.service`` (the gateway and what gateway and consumers share) and
``warren.consumers`` (the consumer runtime) is Warren's own machinery.
"""

from __future__ import annotations

# --- client ---
from warren.client import AsyncClient as AsyncClient
from warren.client import BadRequest as BadRequest
from warren.client import Client as Client
from warren.client import Conflict as Conflict
from warren.client import ConnectionFailed as ConnectionFailed
from warren.client import Forbidden as Forbidden
from warren.client import NotFound as NotFound
from warren.client import ProblemError as ProblemError
from warren.client import RateLimited as RateLimited
from warren.client import ServerError as ServerError
from warren.client import TaskFailed as TaskFailed
from warren.client import Unauthorized as Unauthorized
from warren.client import Unavailable as Unavailable
from warren.client import ValidationFailed as ValidationFailed
from warren.client import WaitTimeout as WaitTimeout
from warren.client import WarrenError as WarrenError
from warren.consumers.context import TaskContext
from warren.consumers.registry import handles
from warren.service.apps import App
from warren.service.contracts import Backoff, Payload, TaskContract
from warren.service.errors import Permanent, Retry

__all__ = [
    "App",
    "Backoff",
    "Payload",
    "Permanent",
    "Retry",
    "TaskContext",
    "TaskContract",
    "handles",
]
