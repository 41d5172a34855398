"""The task calls — get, long-poll, cancel, list — and the loops of ``wait`` and ``list``.

Each loop is a small state object both clients drive the same way: the client
sends the call it is given and hands the answer back.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from warren.client._core import MAX_WAIT_SECONDS, Call, checked
from warren.client.errors import TaskFailed, WaitTimeout
from warren.client.models import Status, TaskPage, TaskRecord


def _task_record(response: httpx.Response) -> TaskRecord:
    return TaskRecord.model_validate_json(checked(response).content)


def _task_page(response: httpx.Response) -> TaskPage:
    return TaskPage.model_validate_json(checked(response).content)


def task_path(task_id: str, suffix: str = "") -> str:
    return f"/v1/tasks/{quote(task_id, safe='')}{suffix}"


def get_call(task_id: str, wait: float = 0.0) -> Call[TaskRecord]:
    """``GET /v1/tasks/{id}``; with ``wait``, a long-poll whose read may take that long."""
    if not wait:
        return Call("GET", task_path(task_id), _task_record)
    return Call(
        "GET",
        task_path(task_id),
        _task_record,
        params={"wait": f"{wait:.3f}"},
        read_timeout=wait + 10.0,
    )


def cancel_call(task_id: str) -> Call[TaskRecord]:
    return Call("DELETE", task_path(task_id), _task_record)


StatusFilter = str | Status | Iterable[str | Status] | None


@dataclass(frozen=True)
class Filters:
    """What ``list`` and ``list_page`` select: ``status`` is one status or several."""

    status: StatusFilter = None
    type: str | None = None
    queue: str | None = None
    since: datetime | str | None = None

    def params(self) -> dict[str, str]:
        status = self.status
        if status is not None and not isinstance(status, str):
            status = ",".join(status)
        since = self.since.isoformat() if isinstance(self.since, datetime) else self.since
        given = {"status": status, "type": self.type, "queue": self.queue, "since": since}
        return {name: value for name, value in given.items() if value}


def page_call(
    filters: Filters, limit: int | None = None, cursor: str | None = None
) -> Call[TaskPage]:
    """``GET /v1/tasks``: one page, newest first."""
    params = filters.params()
    if limit is not None:
        params["limit"] = str(limit)
    if cursor:
        params["cursor"] = cursor
    return Call("GET", "/v1/tasks", _task_page, params=params)


class WaitClock:
    """The polls of one ``wait``: each up to the gateway's cap, until the task is final or
    the overall ``timeout`` (None: no limit) has passed."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self._end = None if timeout is None else time.monotonic() + timeout

    def poll_seconds(self) -> float:
        if self._end is None:
            return MAX_WAIT_SECONDS
        return max(0.0, min(MAX_WAIT_SECONDS, self._end - time.monotonic()))

    def done(self, record: TaskRecord) -> bool:
        """True when ``record`` is final; raises ``WaitTimeout`` once the time is up."""
        if record.final:
            return True
        if self._end is not None and time.monotonic() >= self._end:
            raise WaitTimeout(record, self.timeout or 0.0)
        return False


class Pager:
    """The pages of one ``list``: following ``next_cursor``, stopping after ``limit`` items."""

    def __init__(self, filters: Filters, limit: int | None, page_size: int) -> None:
        self._filters = filters
        self._left = limit
        self._page_size = page_size
        self._cursor: str | None = None
        self._more = limit is None or limit > 0

    def next_call(self) -> Call[TaskPage] | None:
        """The next page's request; None once done."""
        if not self._more:
            return None
        size = self._page_size if self._left is None else min(self._page_size, self._left)
        return page_call(self._filters, size, self._cursor)

    def take(self, page: TaskPage) -> Sequence[TaskRecord]:
        """The page's items to hand out (up to the limit); remembers where to go on."""
        items = page.items if self._left is None else page.items[: self._left]
        if self._left is not None:
            self._left -= len(items)
        self._cursor = page.next_cursor
        self._more = bool(page.next_cursor) and (self._left is None or self._left > 0)
        return items


def outcome(record: TaskRecord) -> Any:
    """The handler's result of a succeeded task; ``TaskFailed`` for a dead or cancelled one."""
    if record.status is Status.SUCCEEDED:
        return record.result
    raise TaskFailed(record)
