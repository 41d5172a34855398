"""Every test here runs twice: on SQLite (a fresh file) and on PostgreSQL (a fresh schema).

Overriding ``settings`` makes the root fixtures (``gateway``, ``start_consumer``,
``channel``…) use the store under test. PostgreSQL is the one at
``WARREN_TEST_POSTGRES_URL`` (default: the local server's ``test`` database);
each test gets its own schema, dropped afterwards. A missing server fails,
as a missing broker does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import make_settings
from tests.support import postgres_schema
from warren.service.settings import Settings
from warren.service.store import TaskStore, open_store


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'warren.db'}"
        return
    async with postgres_schema() as url:
        yield url


@pytest.fixture
def settings(store_url: str) -> Settings:
    return make_settings(store_url=store_url)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[TaskStore]:
    """A store of its own (as a second replica's would be), beside any gateway's."""
    opened = await open_store(store_url)
    yield opened
    await opened.close()
