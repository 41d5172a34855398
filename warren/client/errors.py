"""What a call to the gateway can end in, other than its answer: one exception hierarchy.

Every error answer of the gateway is ``application/problem+json`` (RFC 9457) with a
stable ``code``; it becomes a ``ProblemError`` subclass chosen by its status, so
code can catch a family (``except NotFound``) and branch on the ``code`` within it
(``RateLimited`` is ``rate-limited`` or ``queue-full``). The base is Warren's own
``WarrenError``, so ``except warren.WarrenError`` covers client and server alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from warren.service.errors import WarrenError

if TYPE_CHECKING:
    from warren.client.models import TaskRecord

__all__ = [
    "BadRequest",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "NotFound",
    "ProblemError",
    "RateLimited",
    "ServerError",
    "TaskFailed",
    "Unauthorized",
    "Unavailable",
    "ValidationFailed",
    "WaitTimeout",
    "WarrenError",
]


class ConnectionFailed(WarrenError):
    """No answer came: the gateway could not be reached, or the connection broke.

    ``sent`` says whether the request may have reached the gateway (a broken
    connection, a read timeout) or certainly did not (refused, connect timeout):
    only then, or for a request that is safe to repeat, is it retried.
    """

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class ProblemError(WarrenError):
    """The gateway answered with an error: its problem+json body, as attributes.

    ``code`` is stable and machine-readable (``not-found``, ``validation-failed``,
    ``rate-limited``…); ``errors`` lists ``{"loc", "msg", "type"}`` for validation
    failures; ``retry_after`` is the ``Retry-After`` header in seconds, if any;
    ``body`` is the whole problem, extensions included.
    """

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        *,
        retry_after: float | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail or title}")
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.retry_after = retry_after
        self.body = body if body is not None else {}


class BadRequest(ProblemError):
    """400: the request itself is malformed (JSON, a query parameter, an Idempotency-Key)."""


class Unauthorized(ProblemError):
    """401: no API key, or one the gateway does not know."""


class Forbidden(ProblemError):
    """403: the API key lacks the scope, or may not submit this task type."""


class NotFound(ProblemError):
    """404: no such task (another client's task is one too: it is not yours to see)."""


class Conflict(ProblemError):
    """409: the task already finished (``task-finished``), or an Idempotency-Key was used
    with another submission (``idempotency-key-reused``) or is still in flight."""


class ValidationFailed(ProblemError):
    """422: the submission, its type, payload or options are not valid; see ``errors``.

    Raised before any request too, when ``submit`` was given a contract and the
    payload does not fit it: the same status, code and ``errors`` the gateway gives.
    """


class RateLimited(ProblemError):
    """429: over this client's rate (``rate-limited``) or the queue is full (``queue-full``).

    Either way the task was certainly not enqueued; retried after ``retry_after``.
    """


class ServerError(ProblemError):
    """5xx: the gateway failed."""


class Unavailable(ServerError):
    """503: the broker did not confirm in time, or the store is unreachable.

    For a submission this promises nothing either way: the task may still have been
    enqueued, so a resubmission may run it twice (handlers are idempotent).
    """


class TaskFailed(WarrenError):
    """The task ended without a result: ``dead`` or ``cancelled``; ``record`` says why."""

    def __init__(self, record: TaskRecord) -> None:
        why = " ".join(filter(None, [record.reason, record.error_type, record.error]))
        super().__init__(f"task {record.id} is {record.status.value}" + (f": {why}" if why else ""))
        self.record = record


class WaitTimeout(WarrenError, TimeoutError):
    """The task was not final when the wait ended; ``record`` is its last known state."""

    def __init__(self, record: TaskRecord, timeout: float) -> None:
        super().__init__(f"task {record.id} still {record.status.value} after {timeout:g} s")
        self.record = record


_BY_STATUS: dict[int, type[ProblemError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: ValidationFailed,
    429: RateLimited,
    503: Unavailable,
}


def problem_class(status: int) -> type[ProblemError]:
    """The family of an error status; 5xx without its own class are ``ServerError``."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else ProblemError
