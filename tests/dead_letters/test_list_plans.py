"""The task list and the dead-letter list read an index in order for any one filter.

Why: with 200,000 records a filter on a rare value must not scan the table, nor sort it;
the query plan says so without a timing run (SQLite's plan for its ``EXPLAIN QUERY PLAN``).
The timed figures are ``python -m warren.service.bench.listing`` (benchmarks/README.md).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from warren.service.store import ListQuery, open_store
from warren.service.store.dead import DeadLetterStore, DeadQuery
from warren.service.store.model import Status
from warren.service.store.sql import list_sql

SINCE = datetime(2026, 1, 1, tzinfo=UTC)
TASK_FILTERS = {  # the filter, and the index that serves it
    "none": (ListQuery(), "warren_tasks_created"),
    "status": (ListQuery(statuses=(Status.DEAD,)), "warren_tasks_status"),
    "type": (ListQuery(type="diag.echo"), "warren_tasks_type"),
    "queue": (ListQuery(queue="diag"), "warren_tasks_queue"),
    "since": (ListQuery(since=SINCE), "warren_tasks_created"),
    "owner": (ListQuery(submitter="shop"), "warren_tasks_submitter"),
}


@pytest.mark.parametrize("name", TASK_FILTERS)
async def test_each_task_filter_reads_its_index_in_order(tmp_path: Path, name: str) -> None:
    query, index = TASK_FILTERS[name]
    store = await open_store(f"sqlite:///{tmp_path / 'plans.db'}")
    try:
        sql, args = list_sql(query, store.dialect)
        plan = " | ".join(
            r["detail"] for r in await store.db.read(f"EXPLAIN QUERY PLAN {sql}", *args)
        )
    finally:
        await store.close()
    assert re.search(rf"INDEX {index}\b", plan) and "TEMP B-TREE" not in plan, plan


@pytest.mark.parametrize("field", ["none", "queue", "type", "reason", "since"])
async def test_each_dead_letter_filter_reads_its_index_in_order(tmp_path: Path, field: str) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'plans.db'}")
    values: dict[str, Any] = {"queue": "diag", "type": "diag.echo", "reason": "permanent"}
    values["since"] = SINCE
    query = DeadQuery(**({} if field == "none" else {field: values[field]}))
    try:
        dead = DeadLetterStore(store.db)
        where, args = dead._where(query)
        sql = (
            f"SELECT id FROM warren_dead_letters WHERE {' AND '.join(where)} "
            "ORDER BY dead_at DESC, id DESC LIMIT 50"
        )
        plan = " | ".join(
            r["detail"] for r in await store.db.read(f"EXPLAIN QUERY PLAN {sql}", *args)
        )
    finally:
        await store.close()
    index = "dead_at" if field in ("none", "since") else field
    assert re.search(rf"INDEX warren_dead_letters_{index}\b", plan), plan
    assert "TEMP B-TREE" not in plan, plan
