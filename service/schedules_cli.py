"""``warren schedules``: the app's schedules with their last and next tick, from the store."""

from __future__ import annotations

from warren.service.apps import App
from warren.service.schedule_status import schedule_states
from warren.service.settings import Settings
from warren.service.store import open_store


async def show_schedules(settings: Settings, app: App) -> int:
    store = await open_store(settings.store_url)
    try:
        states = await schedule_states(tuple(app.schedules), store, settings.namespace)
    finally:
        await store.close()
    if not states:
        print("no schedules")
    for s in states:
        when = s["cron"] or f"every {s['every_seconds']:g}s"
        last = f"{s['last_tick']} ({s['last_status']})" if s["last_tick"] else "never"
        print(f"{s['id']}  {s['type']}  {when} {s['timezone']}  last {last}  next {s['next_tick']}")
    return 0
