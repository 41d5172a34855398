"""The store's schema, created and migrated by the service itself at start-up.

Migrations are numbered and only ever appended. Each runs once, in one write
transaction together with the bump of ``warren_schema.version``; on
PostgreSQL an advisory lock makes replicas starting together take turns, on
SQLite the write transaction (``BEGIN IMMEDIATE``) does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from warren.service.store.db import Database, Transaction
from warren.service.store.dead import dead_letter_schema
from warren.service.store.sql import TABLE, Dialect

log = logging.getLogger(__name__)
MIGRATION_LOCK = 0x5741_5252  # "WARR": PostgreSQL advisory lock key of migrations


def _v1(d: Dialect) -> list[str]:
    """Tasks, their attempt history as JSON, and the indexes of the API's queries."""
    return [
        f"""CREATE TABLE {TABLE} (
            id TEXT PRIMARY KEY,
            type TEXT,
            queue TEXT,
            status TEXT,
            attempt INTEGER,
            max_attempts INTEGER,
            created_at {d.time_type},
            updated_at {d.time_type},
            version INTEGER NOT NULL DEFAULT 0,
            started_at {d.time_type},
            finished_at {d.time_type},
            result {d.json_type},
            error_type TEXT,
            error TEXT,
            reason TEXT,
            trace_id TEXT,
            submitter TEXT,
            idempotency_key TEXT,
            request_hash TEXT,
            published {d.bool_type} NOT NULL DEFAULT {d.true_literal},
            cancel_requested_at {d.time_type},
            attempts {d.json_type}
        )""",
        # Insert-first idempotency: the second claim of a (submitter, key) conflicts here.
        f"CREATE UNIQUE INDEX {TABLE}_idempotency ON {TABLE} (submitter, idempotency_key)",
        f"CREATE INDEX {TABLE}_created ON {TABLE} (created_at DESC, id DESC)",
        f"CREATE INDEX {TABLE}_status ON {TABLE} (status, created_at DESC, id DESC)",
        f"CREATE INDEX {TABLE}_updated ON {TABLE} (updated_at)",
    ]


def _v3(d: Dialect) -> list[str]:
    """The task list filtered by one of type, queue or owner, newest first, reads an index
    in order and stops after a page (not a scan of every record for a rare value)."""
    return [
        f"CREATE INDEX {TABLE}_type ON {TABLE} (type, created_at DESC, id DESC)",
        f"CREATE INDEX {TABLE}_queue ON {TABLE} (queue, created_at DESC, id DESC)",
        f"CREATE INDEX {TABLE}_submitter ON {TABLE} (submitter, created_at DESC, id DESC)",
    ]


def _v4(d: Dialect) -> list[str]:
    """A delayed task's due time (``scheduled`` records)."""
    return [f"ALTER TABLE {TABLE} ADD COLUMN due_at {d.time_type}"]


def _v5(d: Dialect) -> list[str]:
    """The list indexes in ascending order: the newest task then goes at an index's end.

    Both engines read an index backwards for ``ORDER BY created_at DESC, id DESC``, so the
    order changes no plan. A ``DESC`` index put every new task at its first leaf: a
    B-tree splits a page it inserts into half and half, except when it appends at the
    end, so those indexes held half-empty pages. With time-ordered task ids
    (``new_task_id``) they were 50 % unused; ascending, the database is 24 % smaller
    (``benchmarks/store_ids.py``). Rebuilt once, at the first start of this version.
    """
    leads = {"created": "", "status": "status, ", "type": "type, ", "queue": "queue, ",
             "submitter": "submitter, "}  # fmt: skip
    drops = [f"DROP INDEX {TABLE}_{name}" for name in leads]
    creates = [
        f"CREATE INDEX {TABLE}_{name} ON {TABLE} ({lead}created_at, id)"
        for name, lead in leads.items()
    ]
    return drops + creates


MIGRATIONS: tuple[Callable[[Dialect], list[str]], ...] = (
    _v1,
    dead_letter_schema,
    _v3,
    _v4,
    _v5,
)


async def migrate(db: Database) -> int:
    """Bring the schema to the newest version; returns that version."""
    async with db.write() as tx:
        if db.dialect.name == "postgresql":
            await tx.execute(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        await tx.execute("CREATE TABLE IF NOT EXISTS warren_schema (version INTEGER NOT NULL)")
        current = await _version(tx)
        for number, migration in enumerate(MIGRATIONS, start=1):
            if number <= current:
                continue
            for statement in migration(db.dialect):
                await tx.execute(statement)
            log.info("store schema migrated to version %d", number)
        if current < len(MIGRATIONS):
            await tx.execute("DELETE FROM warren_schema")
            await tx.execute("INSERT INTO warren_schema (version) VALUES (?)", len(MIGRATIONS))
        elif current > len(MIGRATIONS):
            log.warning(
                "store schema %d is newer than this service knows (%d)", current, len(MIGRATIONS)
            )
    return max(current, len(MIGRATIONS))


async def _version(tx: Transaction) -> int:
    rows = await tx.fetch("SELECT MAX(version) AS version FROM warren_schema")
    return int(rows[0]["version"] or 0) if rows else 0
