"""Every test here runs twice: on SQLite (a fresh file) and on PostgreSQL (a fresh schema).

Overriding ``settings`` makes the root fixtures (``gateway``, ``start_consumer``,
``channel``…) use the store under test. PostgreSQL is the one at
``WARREN_TEST_POSTGRES_URL`` (default: the local server's ``test`` database);
each test gets its own schema, dropped afterwards. A missing server fails,
as a missing broker does.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from service.settings import Settings
from service.store import TaskStore, open_store
from tests.conftest import make_settings

POSTGRES_URL = os.environ.get(
    "WARREN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'warren.db'}"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        separator = "&" if "?" in POSTGRES_URL else "?"
        yield f"{POSTGRES_URL}{separator}search_path={schema}"
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


@pytest.fixture
def settings(store_url: str) -> Settings:
    return make_settings(store_url=store_url)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[TaskStore]:
    """A store of its own (as a second replica's would be), beside any gateway's."""
    opened = await open_store(store_url)
    yield opened
    await opened.close()
