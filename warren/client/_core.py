"""What ``Client`` and ``AsyncClient`` share: everything but the I/O.

A ``Call`` is one HTTP exchange as data: the request, how to read its answer,
and whether sending it again is safe. The clients only send calls (through
tenacity, under a ``RetryPolicy``) and hand the response back to the call, so
the two surfaces cannot drift apart in what they send or how they read it.
The calls themselves are built in ``_calls``, ``_submission`` and ``_events``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypeVar

import httpx
import orjson
import tenacity

from warren.client.errors import ConnectionFailed, ProblemError, problem_class

T = TypeVar("T")

MAX_WAIT_SECONDS = 60.0
"""The gateway's cap on one long-poll (``?wait=S``); longer waits are several polls."""
SSE_READ_TIMEOUT_SECONDS = 45.0
"""Silence after which an event stream counts as broken: three of the gateway's 15 s
keep-alive comments."""
USER_AGENT = "warren-client/0.1"


@dataclass(frozen=True)
class Call(Generic[T]):
    """One HTTP exchange: the request, how its answer becomes ``T``, and whether it may be
    sent again after it may have reached the gateway (``repeatable``)."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: Mapping[str, str] | None = None
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    read_timeout: float | None = None  # None: the client's timeout
    repeatable: bool = True


@dataclass(frozen=True)
class RetryPolicy:
    """When a call is sent again, and for how long.

    An answer in ``statuses`` (429 and 503: the gateway says "later") is retried after
    its ``Retry-After``, else after an exponential backoff from ``backoff_seconds``.
    A request that never left (connection refused) is retried; one that may have
    arrived (connection broken before the answer) only if it is safe to repeat: any
    GET or DELETE, and a submission carrying an ``Idempotency-Key``. At most
    ``attempts`` sends, and at most ``budget_seconds`` asleep between them in all (a
    long-poll's own time does not count): a sleep past it is not taken, the last error
    is raised instead (its ``retry_after`` says how long to wait).
    ``RetryPolicy(attempts=1)`` never retries.

    A submission answered 503 may still have been enqueued (the broker's confirm came
    too late), so retrying it may run the task twice, as any resubmission after a 503
    may: handlers are idempotent. Leave 503 out of ``statuses`` to decide yourself.
    """

    attempts: int = 5
    budget_seconds: float = 30.0
    backoff_seconds: float = 0.5
    statuses: frozenset[int] = frozenset({429, 503})

    def retries(self, call: Call[Any], exc: BaseException) -> bool:
        """Whether ``exc`` from sending ``call`` is worth another send."""
        if isinstance(exc, ProblemError):
            return exc.status in self.statuses
        if isinstance(exc, ConnectionFailed):
            return call.repeatable or not exc.sent
        return False

    def delay(self, state: tenacity.RetryCallState) -> float:
        """The gateway's ``Retry-After`` if it sent one, else backoff with 25 % jitter."""
        exc = state.outcome.exception() if state.outcome else None
        after = getattr(exc, "retry_after", None)
        if isinstance(after, float):
            return after
        return self.backoff_seconds * 2.0 ** (state.attempt_number - 1) * random.uniform(1, 1.25)

    def stop(self, state: tenacity.RetryCallState) -> bool:
        """Out of attempts, or the next sleep would overdraw the budget."""
        overdrawn = state.idle_for + state.upcoming_sleep > self.budget_seconds
        return state.attempt_number >= self.attempts or overdrawn

    def arguments(self, call: Call[Any]) -> dict[str, Any]:
        """tenacity's arguments for ``call``, the same for ``Retrying`` and ``AsyncRetrying``."""
        return {
            "retry": tenacity.retry_if_exception(lambda exc: self.retries(call, exc)),
            "wait": self.delay,
            "stop": self.stop,
            "reraise": True,
        }


@dataclass(frozen=True)
class Config:
    """How a client reaches the gateway; builds the options of its ``httpx`` client."""

    url: str
    token: str | None = None
    timeout: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    headers: Mapping[str, str] = field(default_factory=dict)

    def http_options(self) -> dict[str, Any]:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **self.headers}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return {"base_url": self.url, "headers": headers, "timeout": self.timeout}

    def request(self, http: httpx.Client | httpx.AsyncClient, call: Call[Any]) -> httpx.Request:
        """The ``httpx`` request of ``call`` (building one is not I/O in either client)."""
        timeout = httpx.Timeout(self.timeout, read=call.read_timeout or self.timeout)
        return http.build_request(
            call.method,
            call.path,
            params=call.params,
            content=call.body,
            headers=dict(call.headers),
            timeout=timeout,
        )


# --- answers ----------------------------------------------------------------------


def connection_failed(exc: httpx.TransportError, url: str) -> ConnectionFailed:
    """A transport error as a ``ConnectionFailed``; ``sent`` unless it failed to connect."""
    unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return ConnectionFailed(f"no answer from {url} ({why})", sent=not unsent)


def retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds: delay-seconds or an HTTP date; None if absent or invalid."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, but no zone said
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def problem(response: httpx.Response) -> ProblemError:
    """An error answer (read whole) as its typed exception.

    A body that is not problem+json (a proxy's HTML page, the parser's plain-text
    400) still gives the right family, with the code ``http-<status>``.
    """
    status = response.status_code
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        text = response.text.strip()[:200] or None
        body = {"status": status, "code": f"http-{status}", "detail": text}
    after = retry_after(response.headers.get("Retry-After"))
    return problem_of(status, body, response.reason_phrase, after)


def problem_of(
    status: int, body: dict[str, Any], reason: str | None = None, after: float | None = None
) -> ProblemError:
    """A problem+json document as its typed exception (a response's, or a batch task's)."""
    errors = body.get("errors")
    return problem_class(status)(
        status,
        str(body.get("code") or f"http-{status}"),
        str(body.get("title") or reason or f"HTTP {status}"),
        body.get("detail"),
        errors if isinstance(errors, list) else None,
        retry_after=after,
        body=body,
    )


def checked(response: httpx.Response) -> httpx.Response:
    """The response, unless it is an error: then its exception is raised."""
    if response.is_error:
        raise problem(response)
    return response
