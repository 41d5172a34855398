"""Every test here runs on SQLite and on PostgreSQL (the fixtures of ``tests/store``)."""

from __future__ import annotations

from tests.store.conftest import settings, store_url

__all__ = ["settings", "store_url"]
