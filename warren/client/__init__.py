"""Warren's Python client: submit tasks to a gateway and follow them, sync or async.

``Client`` (blocking) and ``AsyncClient`` (asyncio) have the same methods::

    with warren.Client("http://127.0.0.1:8080", token="wrn_shop_…") as client:
        task = client.submit("diag.echo", {"message": "hi"}, idempotency_key=True)
        print(task.id, task.trace_id)
        print(client.result(task.id, timeout=30))          # {"message": "hi"}

    async with warren.AsyncClient(url, token=token) as client:
        task = await client.submit(diag_echo, EchoPayload(message="hi"))  # checked locally
        record = await client.wait(task.id, timeout=30)    # the final TaskRecord
        async for record in client.list(status="dead"):    # every page, lazily
            ...
        async for record in client.events(task.id):        # each change, until final
            ...

Methods: ``submit`` (``wait=S``: submit and wait in one request), ``submit_batch``
(a list of ``Submission``), ``get``, ``wait``, ``result``, ``cancel``, ``list_page``,
``list`` and ``events``; answers are the models of ``warren.client.models``.
For operators: ``queues``, ``dead_letters``, ``dead_letter``, ``replay`` and ``discard``.
A reader bound to the broker's events exchange instead decodes each message
with ``lifecycle_events(body, headers)`` (batches and single events alike).

Failures are exceptions of ``warren.client.errors``: every error answer of the
gateway is a ``ProblemError`` subclass by status (``NotFound``, ``ValidationFailed``,
``RateLimited``…) carrying its stable ``code``; no answer at all is
``ConnectionFailed``. ``429`` and ``503`` are retried after their ``Retry-After``
within a ``RetryPolicy``; so is a connection that failed, where repeating the
request is safe.

Built on httpx, the one well-kept library with a sync and an async client of the
same API (keep-alive pools, timeouts, streaming), so the two clients differ only
in their I/O; retries are tenacity's.
"""

from __future__ import annotations

from warren.client._batch import BatchItem
from warren.client._core import RetryPolicy
from warren.client._ops import DeadLetter, DeadLetterPage, QueueState
from warren.client._submission import Submission
from warren.client.aio import AsyncClient
from warren.client.errors import (
    BadRequest,
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
from warren.client.lifecycle import lifecycle_events
from warren.client.models import Attempt, Status, TaskAccepted, TaskPage, TaskRecord
from warren.client.sync import Client

__all__ = [
    "AsyncClient",
    "Attempt",
    "BadRequest",
    "BatchItem",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "DeadLetter",
    "DeadLetterPage",
    "Forbidden",
    "NotFound",
    "ProblemError",
    "QueueState",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "Status",
    "Submission",
    "TaskAccepted",
    "TaskFailed",
    "TaskPage",
    "TaskRecord",
    "Unauthorized",
    "Unavailable",
    "ValidationFailed",
    "WaitTimeout",
    "WarrenError",
    "lifecycle_events",
]
