"""Where each schedule stands: its last fired tick (with that task's status) and its next.

Shared by ``GET /v1/schedules`` and ``warren schedules``. The last tick is
found by the deterministic task ids of the most recent ticks (``LOOKBACK_TICKS``
of them): no other state is kept anywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from warren.service.schedules import Schedule
from warren.service.store import TaskRecord, TaskStore

LOOKBACK_TICKS = 10


async def schedule_states(
    schedules: tuple[Schedule, ...], store: TaskStore, namespace: str
) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [await _state(s, store, namespace, now) for s in schedules]


async def _state(
    schedule: Schedule, store: TaskStore, namespace: str, now: datetime
) -> dict[str, Any]:
    last: tuple[datetime, TaskRecord] | None = None
    tick = schedule.previous(now)
    for _ in range(LOOKBACK_TICKS):
        record = await store.get(schedule.task_id(namespace, tick))
        if record is not None:
            last = (tick, record)
            break
        tick = schedule.previous(tick - timedelta(microseconds=1))
    return {
        "id": schedule.id,
        "type": schedule.task_type,
        "cron": schedule.cron,
        "every_seconds": schedule.every,
        "timezone": schedule.timezone,
        "missed": schedule.missed,
        "submitter": schedule.owner,
        "last_tick": last[0].isoformat() if last else None,
        "last_task_id": last[1].id if last else None,
        "last_status": last[1].status.value if last else None,
        "next_tick": schedule.next_after(now).isoformat(),
    }
