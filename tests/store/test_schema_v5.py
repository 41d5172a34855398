"""Schema version 5: the task list's indexes ascending, rebuilt in a store that has records.

Why: a ``DESC`` index puts each new task at its first leaf, and B-trees split such pages
half and half, so those indexes were half empty; both engines read an ascending index
backwards for the list's ``ORDER BY created_at DESC, id DESC`` (its plans:
``tests/dead_letters/test_list_plans.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from warren.service.store import Change, ListQuery, open_store, schema
from warren.service.store.model import Status, new_task_id

LIST_INDEXES = ("created", "status", "type", "queue", "submitter")


def queued(task_id: str) -> Change:
    return Change(task_id=task_id, type="diag.echo", queue="diag", status=Status.QUEUED,
                  attempt=1, max_attempts=3, at=datetime.now(UTC),
                  created_at=datetime.now(UTC), submitter="shop")  # fmt: skip


async def test_a_store_of_version_4_keeps_its_records_and_lists_them_newest_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'tasks.db'}"
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:4])
    old = await open_store(url)
    ids = [new_task_id() for _ in range(30)]
    try:
        for task_id in ids:
            await old.apply([queued(task_id)])
    finally:
        await old.close()
    monkeypatch.undo()
    store = await open_store(url)
    try:
        versions = await store.db.read("SELECT MAX(version) AS v FROM warren_schema")
        page = await store.list(ListQuery(submitter="shop", limit=10))
        descending = [
            (name, row["name"])
            for name in LIST_INDEXES
            for row in await store.db.read(f"PRAGMA index_xinfo(warren_tasks_{name})")
            if row["key"] and row["desc"]
        ]
    finally:
        await store.close()
    assert versions[0]["v"] == 5
    assert [r.id for r in page.items] == ids[::-1][:10]
    assert descending == []
