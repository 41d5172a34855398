"""The recorder's write loop against a store that fails: retried when down, bad data dropped."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from tests.conftest import make_settings
from warren.service.recorder_items import Item
from warren.service.recorder_writer import Writer
from warren.service.store import Change, TaskRecord, TaskStore
from warren.service.store.db import StoreRejected, StoreUnavailable
from warren.service.store.merge import merge
from warren.service.store.model import Status


def queued(task_id: str, error: str | None = None) -> Change:
    return Change(
        task_id=task_id,
        type="diag.echo",
        queue="diag",
        status=Status.QUEUED,
        attempt=1,
        max_attempts=1,
        at=datetime.now(UTC),
        error=error,
    )


class FailingStore:
    """Down for ``outages`` calls, then refuses any write that holds ``poison``."""

    def __init__(self, outages: int, poison: str) -> None:
        self.outages = outages
        self.poison = poison
        self.written: list[str] = []

    async def apply(self, changes: Sequence[Change]) -> list[TaskRecord]:
        if self.outages:
            self.outages -= 1
            raise StoreUnavailable("down")
        if any(c.task_id == self.poison for c in changes):
            raise StoreRejected("refused")
        self.written += [c.task_id for c in changes]
        return [merge(None, c) for c in changes]


async def test_a_batch_waits_out_an_outage_and_only_a_refused_change_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("warren.service.recorder_writer.RETRY_DELAYS", (0.01,))
    good, bad = uuid.uuid4().hex, uuid.uuid4().hex
    store = FailingStore(outages=2, poison=bad)
    settings = make_settings()
    bound = settings.recorder_max_unwritten_submissions
    writer = Writer(store, settings.recorder_batch_size, bound)  # type: ignore[arg-type]
    await writer.write([Item(None, (queued(good),)), Item(None, (queued(bad),))])
    assert store.written == [good]
    assert writer.stats.events == 2 and writer.stats.batches == 1


async def test_text_the_database_cannot_hold_is_cleaned_not_refused(store: TaskStore) -> None:
    done, dead = uuid.uuid4().hex, uuid.uuid4().hex
    base = queued(done).model_dump(mode="json")
    await store.apply(
        [
            Change.model_validate(base | {"status": "succeeded", "result": {"k\x00": ["x\x00"]}}),
            Change.model_validate(base | {"task_id": dead, "status": "dead", "error": "a\x00b"}),
        ]
    )
    succeeded, failed = await store.get(done), await store.get(dead)
    assert succeeded is not None and succeeded.result == {"k": ["x"]}
    assert failed is not None and failed.error == "ab"
