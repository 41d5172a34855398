"""The clients' shared, I/O-free parts: reading an event stream, ``Retry-After``, problems."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import orjson
import pytest

from warren.client import ConnectionFailed, NotFound, ServerError, Status
from warren.client._core import problem, retry_after
from warren.client._events import EventStream


def event(version: int, status: str) -> list[str]:
    record: dict[str, object] = {"id": "a" * 32, "type": "diag.echo", "queue": "diag"}
    record |= {"status": status, "attempt": 1, "max_attempts": 5, "version": version}
    return [f"id: {version}", f"data: {orjson.dumps(record).decode()}", ""]


def test_an_event_stream_reopened_skips_what_it_saw_and_ends_when_final() -> None:
    stream = EventStream("/v1/tasks/x/events", reopens=1)
    lines = [": keep-alive", "", *event(1, "queued"), *event(2, "running")]
    assert [r.status for line in lines if (r := stream.feed(line))] == ["queued", "running"]
    stream.broken(httpx.ReadError("cut"))  # the first break: reopened where it was
    assert stream.call().headers["Last-Event-ID"] == "2"
    lines = [*event(2, "running"), *event(3, "succeeded")]  # the gateway repeats the current
    assert [r.status for line in lines if (r := stream.feed(line))] == [Status.SUCCEEDED]
    assert stream.done


def test_an_event_stream_that_keeps_breaking_is_raised() -> None:
    stream = EventStream("/v1/tasks/x/events", reopens=1)
    stream.broken(None)
    with pytest.raises(ConnectionFailed, match="ended before the task did"):
        stream.broken(None)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, None), ("3", 3.0), ("soon", None), ("-1", None)],
)
def test_retry_after_in_seconds(header: str | None, seconds: float | None) -> None:
    assert retry_after(header) == seconds


def test_retry_after_as_a_date() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28 <= (retry_after(later) or 0) <= 30
    assert retry_after(format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)) == 0


def test_a_problem_keeps_its_code_and_extensions() -> None:
    body: dict[str, object] = {"type": "/problems/not-found", "title": "Not Found", "status": 404}
    body |= {"code": "not-found", "detail": "no task x", "instance": "/v1/tasks/x"}
    found = problem(httpx.Response(404, content=orjson.dumps(body)))
    assert isinstance(found, NotFound) and found.body == body
    assert (found.code, found.detail, found.errors, found.retry_after) == (
        "not-found",
        "no task x",
        [],
        None,
    )
    assert str(found) == "404 not-found: no task x"
    proxy = problem(httpx.Response(502, text="<html>Bad Gateway</html>"))
    assert isinstance(proxy, ServerError) and proxy.code == "http-502"
    assert proxy.title == "Bad Gateway" and proxy.detail == "<html>Bad Gateway</html>"
