"""``Client``: Warren's HTTP API from blocking code (scripts, WSGI apps, the CLI).

The same surface as ``AsyncClient``, method for method; both build their requests
and read their answers in the shared ``_core``, ``_calls``, ``_submission`` and
``_events``, and differ only in how they send them.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Self, TypeVar, overload

import httpx
import tenacity

from warren.client._batch import BatchItem, plan_batch
from warren.client._calls import (
    Filters,
    Pager,
    StatusFilter,
    WaitClock,
    cancel_call,
    get_call,
    outcome,
    page_call,
    task_path,
)
from warren.client._core import Call, Config, RetryPolicy, connection_failed
from warren.client._events import EventStream
from warren.client._ops import (
    DeadLetter,
    DeadLetterPage,
    QueueState,
    act_call,
    dead_letter_call,
    dead_page_call,
    queues_call,
)
from warren.client._submission import Payload, Submission, submit_call
from warren.client.models import TaskAccepted, TaskPage, TaskRecord
from warren.service.contracts import TaskContract

T = TypeVar("T")


class Client:
    """A connection pool to one Warren gateway; use it as a context manager, or ``close()`` it.

    ``url`` is the gateway's base URL, ``token`` an API key (``wrn_<id>_<secret>``,
    sent as ``Authorization: Bearer``). ``timeout`` bounds connecting and each read
    (long-polls and event streams get longer reads of their own). ``retry`` says
    which failures are retried and for how long (see ``RetryPolicy``); ``headers``
    are added to every request (e.g. ``X-Warren-Client`` for a gateway without keys).

    Every error answer raises a ``ProblemError`` subclass carrying its ``code``, and a
    request that got no answer raises ``ConnectionFailed``: see ``warren.client.errors``.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._config = Config(url, token, timeout, retry or RetryPolicy(), dict(headers or {}))
        self._http = httpx.Client(**self._config.http_options())

    def __repr__(self) -> str:
        return f"Client({self._config.url!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    @overload
    def submit(
        self,
        task: str | TaskContract[Any],
        payload: Payload,
        *,
        max_attempts: int | None = None,
        timeout_seconds: float | None = None,
        priority: int | None = None,
        idempotency_key: str | bool | None = None,
        delay_seconds: float | None = None,
        run_at: datetime | None = None,
        wait: None = None,
    ) -> TaskAccepted: ...

    @overload
    def submit(
        self,
        task: str | TaskContract[Any],
        payload: Payload,
        *,
        max_attempts: int | None = None,
        timeout_seconds: float | None = None,
        priority: int | None = None,
        idempotency_key: str | bool | None = None,
        delay_seconds: float | None = None,
        run_at: datetime | None = None,
        wait: float,
    ) -> TaskAccepted | TaskRecord: ...

    def submit(
        self,
        task: str | TaskContract[Any],
        payload: Payload,
        *,
        max_attempts: int | None = None,
        timeout_seconds: float | None = None,
        priority: int | None = None,
        idempotency_key: str | bool | None = None,
        delay_seconds: float | None = None,
        run_at: datetime | None = None,
        wait: float | None = None,
    ) -> TaskAccepted | TaskRecord:
        """Submit a task; the accepted task (``.id``, ``.trace_id``) once the broker has it.

        ``task`` is a type name (``"email.send"``) or its ``TaskContract``: given the
        contract, ``payload`` (a dict or the contract's model) and the options are
        validated first, and a bad one raises ``ValidationFailed`` with no request sent.
        ``idempotency_key`` (a string, or ``True`` to generate one) makes the call safe
        to repeat: the gateway answers a repeat with the original task
        (``.replayed``), and the client retries it after a broken connection too.

        ``wait`` (seconds, up to 60: the gateway's cap) submits and waits in one request:
        the task's final ``TaskRecord`` if it ends in time, else the ``TaskAccepted``.

        ``delay_seconds`` (whole seconds, rounded up) or ``run_at`` (a timezone-aware
        ``datetime``, sent as RFC 3339) runs the task later: it is ``scheduled`` until
        ``.due_at``, held on the broker. Giving both raises ``ValidationFailed``.
        """
        submission = Submission(
            task,
            payload,
            max_attempts,
            timeout_seconds,
            priority,
            idempotency_key,
            delay_seconds,
            run_at,
        )
        return self._do(submit_call(submission, wait))

    def submit_batch(self, submissions: Iterable[Submission]) -> list[BatchItem]:
        """Submit many tasks in one request (``POST /v1/tasks/batch``); one outcome per
        submission, in order: the ``TaskAccepted``, or the ``ProblemError`` it would have
        raised alone (returned, not raised). Each ``Submission`` is checked locally first,
        as ``submit`` checks its arguments. An error of the whole request is raised.
        """
        plan = plan_batch(submissions)
        if plan.call is None:
            return [item for item in plan.outcomes if item is not None]
        return self._do(plan.call)

    def get(self, task_id: str) -> TaskRecord:
        """The task's record now; ``NotFound`` for an unknown task or another client's."""
        return self._do(get_call(task_id))

    def wait(self, task_id: str, timeout: float | None = None) -> TaskRecord:
        """The task's record once final (succeeded, dead or cancelled), long-polling.

        ``timeout`` (seconds; None: no limit) bounds the whole wait; past it,
        ``WaitTimeout`` carries the last record seen.
        """
        clock = WaitClock(timeout)
        while True:
            record = self._do(get_call(task_id, clock.poll_seconds()))
            if clock.done(record):
                return record

    def result(self, task_id: str, timeout: float | None = None) -> Any:
        """The handler's result once the task succeeded; ``TaskFailed`` if it died or was
        cancelled, ``WaitTimeout`` if not final within ``timeout``."""
        return outcome(self.wait(task_id, timeout))

    def cancel(self, task_id: str) -> TaskRecord:
        """Cancel a task not finished yet; the record (``cancel_requested_at`` set).

        A queued or retrying task is skipped, a running one stopped if it can be; the
        record turns ``cancelled`` when a consumer acted. ``Conflict`` once finished.
        """
        return self._do(cancel_call(task_id))

    def list_page(
        self,
        *,
        status: StatusFilter = None,
        type: str | None = None,
        queue: str | None = None,
        since: datetime | str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> TaskPage:
        """One page of tasks, newest first; pass its ``next_cursor`` as ``cursor`` for the next.

        ``status`` is one status or several (any of them matches), ``since`` a time
        with its UTC offset, ``limit`` the page size (the gateway's default: 50).
        """
        filters = Filters(status, type, queue, since)
        return self._do(page_call(filters, limit, cursor))

    def list(
        self,
        *,
        status: StatusFilter = None,
        type: str | None = None,
        queue: str | None = None,
        since: datetime | str | None = None,
        limit: int | None = None,
        page_size: int = 100,
    ) -> Generator[TaskRecord, None, None]:
        """Every task matching the filters (as ``list_page``), newest first, page by page.

        Pages are fetched as the iteration reaches them; ``limit`` stops after that many.
        """
        pager = Pager(Filters(status, type, queue, since), limit, page_size)
        while (call := pager.next_call()) is not None:
            yield from pager.take(self._do(call))

    def events(self, task_id: str) -> Generator[TaskRecord, None, None]:
        """The task's record now and at each change (Server-Sent Events), until it is final.

        A stream that breaks is reopened where it was (records are never repeated).
        To leave early, iterate inside ``contextlib.closing(...)``: the stream's
        connection is then released at once rather than when the generator is collected.
        """
        stream = EventStream(task_path(task_id, "/events"), self._config.retry.attempts)
        while not stream.done:
            response = self._do(stream.call(), stream=True)
            try:
                stream.opened(response)
                yield from self._records(stream, response)
            finally:
                response.close()

    def _records(self, stream: EventStream, response: httpx.Response) -> Iterator[TaskRecord]:
        try:
            for line in response.iter_lines():
                if (record := stream.feed(line)) is not None:
                    yield record
                    if stream.done:
                        return
        except httpx.TransportError as exc:
            stream.broken(exc)
            return
        if not stream.done:
            stream.broken(None)

    # --- operations: queues and dead letters (``read``; replay and discard: ``admin``) ---

    def queues(self) -> Sequence[QueueState]:
        """Each queue's broker depths, running tasks, dead letters and rates."""
        return self._do(queues_call())

    def dead_letters(
        self,
        *,
        queue: str | None = None,
        type: str | None = None,
        reason: str | None = None,
        since: datetime | str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> DeadLetterPage:
        """One page of dead letters, newest first; reading them moves nothing."""
        filters = {"queue": queue, "type": type, "reason": reason, "since": since}
        return self._do(dead_page_call(filters, limit, cursor))

    def dead_letter(self, letter_id: str) -> DeadLetter:
        """One dead letter with its payload and headers."""
        return self._do(dead_letter_call(letter_id))

    def replay(
        self, ids: Sequence[str] | None = None, *, filter: dict[str, Any] | None = None
    ) -> int:
        """Re-publish dead letters (ids, or a filter) as their next attempt; how many."""
        return self._do(act_call("replay", ids, filter))

    def discard(
        self, ids: Sequence[str] | None = None, *, filter: dict[str, Any] | None = None
    ) -> int:
        """Delete dead letters (ids, or a filter) for good; how many."""
        return self._do(act_call("discard", ids, filter))

    def _do(self, call: Call[T], *, stream: bool = False) -> T:
        """Send ``call`` under the retry policy; its answer, read by the call."""
        for attempt in tenacity.Retrying(**self._config.retry.arguments(call)):
            with attempt:
                return self._once(call, stream)
        raise AssertionError("unreachable: tenacity reraises")

    def _once(self, call: Call[T], stream: bool) -> T:
        try:
            response = self._http.send(self._config.request(self._http, call), stream=stream)
            if stream and response.is_error:  # the problem body, then the connection back
                try:
                    response.read()
                finally:
                    response.close()
        except httpx.TransportError as exc:
            raise connection_failed(exc, self._config.url) from exc
        return call.read(response)
