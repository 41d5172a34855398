"""Micro-timing of encoding one lifecycle event: the model's route (``task_change`` builds a
``Change``, ``encode_event`` writes it) against ``event_of`` (the same bytes, no model), the
consumers' route since 2026-11-30. No broker, one process.

    .venv/bin/python benchmarks/event_micro.py
"""

from __future__ import annotations

import timeit
from datetime import UTC, datetime

from warren.service.store.model import Status
from warren.service.wire import Envelope, encode_event, event_of, task_change

NUMBER = 50_000
REPEATS = 5
ENVELOPE = Envelope(
    id="da5b66f703ec47e18215300a97df9ab1",
    type="diag.echo",
    queue="diag",
    body=b'{"message":"bench"}',
    attempt=1,
    max_attempts=5,
    timeout_seconds=60.0,
    created_at=datetime(2026, 11, 30, 8, 0, tzinfo=UTC),
    traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
    submitter="client-1",
)
STARTED = datetime.now(UTC)
RESULT = {"message": "bench"}


def by_model() -> bytes:
    change = task_change(
        ENVELOPE, Status.SUCCEEDED, worker="host:1", started_at=STARTED, result=RESULT
    )
    return encode_event(change)


def direct() -> bytes:
    return event_of(ENVELOPE, Status.SUCCEEDED, "host:1", STARTED, result=RESULT)


def main() -> None:
    for name, fn in (("model", by_model), ("event_of", direct)) * 2:
        best = min(timeit.repeat(fn, number=NUMBER, repeat=REPEATS)) / NUMBER
        print(f"{name:9} {best * 1e6:6.2f} µs per event")


if __name__ == "__main__":
    main()
