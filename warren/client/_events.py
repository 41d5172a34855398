"""Following a task's Server-Sent Events: parsing the stream and resuming a broken one.

The gateway sends the task's record at once, then at each change, each event's
``id`` being the record's version, and ends the stream once the task is final.
A stream that breaks before that is reopened with ``Last-Event-ID``; the gateway
then sends the current record again, and versions already seen are skipped.
"""

from __future__ import annotations

import httpx

from warren.client._core import SSE_READ_TIMEOUT_SECONDS, Call, checked
from warren.client.errors import ConnectionFailed
from warren.client.models import TaskRecord


class EventStream:
    """The state of one ``events(id)``: lines in, records out, reopened when broken.

    ``reopens`` bounds how many breaks in a row, with no new record between them,
    are reopened before the break is raised.
    """

    def __init__(self, path: str, reopens: int) -> None:
        self.path = path
        self.version = 0
        self.done = False
        self._reopens = reopens
        self._breaks = 0
        self._data: list[str] = []

    def call(self) -> Call[httpx.Response]:
        """The request that (re)opens the stream; its answer is checked for a problem."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.version:
            headers["Last-Event-ID"] = str(self.version)
        return Call(
            "GET", self.path, checked, headers=headers, read_timeout=SSE_READ_TIMEOUT_SECONDS
        )

    def opened(self, response: httpx.Response) -> None:
        """204 is the gateway's "nothing more": the final version was seen already."""
        self._data = []
        if response.status_code == 204:
            self.done = True

    def feed(self, line: str) -> TaskRecord | None:
        """One line of the stream; the record when it completes an event not seen before.

        Only ``data`` fields matter (``id`` repeats the record's version); comments
        (the gateway's keep-alives), ``event`` and ``retry`` fields are ignored.
        """
        if line.startswith("data:"):
            data = line[5:]
            self._data.append(data[1:] if data.startswith(" ") else data)
            return None
        if line or not self._data:
            return None
        record = TaskRecord.model_validate_json("\n".join(self._data))
        self._data = []
        if record.version <= self.version:
            return None
        self.version, self.done, self._breaks = record.version, record.final, 0
        return record

    def broken(self, exc: httpx.TransportError | None) -> None:
        """The stream ended before a final state (``exc``: it broke; None: the gateway
        closed it, e.g. shutting down): reopen it, unless that happened too often in a row."""
        self._breaks += 1
        if self._breaks > self._reopens:
            why = f"broke: {exc!r}" if exc else "ended before the task did"
            raise ConnectionFailed(f"the event stream of {self.path} {why}", sent=True) from exc
