"""``running`` only for tasks still running after ``running_event_delay_seconds``.

A real gateway and a real in-process consumer on the real broker: what the
event stream and the task record say of fast and slow tasks, with the default
delay and with 0 (``running`` always first, before the handler).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.conftest import StartConsumer
from tests.store.support import Client, get_task, status_becomes, submit
from tests.support import Events
from warren.service.settings import Settings

DEFAULT_DELAY: float = Settings.model_fields["running_event_delay_seconds"].default
ECHO = {"type": "diag.echo", "payload": {"message": "hi"}}


def with_delay(settings: Settings, delay: float = DEFAULT_DELAY) -> Settings:
    return settings.model_copy(update={"running_event_delay_seconds": delay})


def time_of(event: dict[str, Any], field: str) -> datetime:
    return datetime.fromisoformat(event[field])


def statuses(events: Events, task_id: str) -> list[str]:
    return [e["status"] for e in events.of(task_id)]


async def test_a_fast_task_publishes_no_running_but_its_record_says_when_it_started(
    gateway: Client, start_consumer: StartConsumer, events: Events, settings: Settings
) -> None:
    assert DEFAULT_DELAY > 0
    await start_consumer("diag", settings_=with_delay(settings))
    accepted = await submit(gateway, ECHO)

    succeeded = await events.final(accepted["id"])
    # Events of one channel arrive in publish order: a running event would be here by now.
    assert statuses(events, accepted["id"]) == ["succeeded"]
    assert time_of(succeeded, "started_at") <= time_of(succeeded, "at")
    record = await status_becomes(gateway, accepted["id"], "succeeded")
    assert record["result"] == {"message": "hi"}
    assert time_of(record, "started_at") == time_of(succeeded, "started_at")
    [attempt] = record["attempts"]
    assert attempt["outcome"] == "succeeded"
    assert time_of(attempt, "started_at") == time_of(succeeded, "started_at")
    assert attempt["finished_at"] == record["finished_at"]


async def test_a_failed_fast_attempt_carries_its_start_on_the_retrying_event(
    start_consumer: StartConsumer, gateway: Client, events: Events, settings: Settings
) -> None:
    await start_consumer("diag", settings_=with_delay(settings))
    accepted = await submit(gateway, {"type": "diag.flaky", "payload": {"fail_times": 1}})

    final = await events.final(accepted["id"])
    assert final["status"] == "succeeded" and final["attempt"] == 2
    assert statuses(events, accepted["id"]) == ["retrying", "succeeded"]
    retrying, _ = events.of(accepted["id"])
    assert time_of(retrying, "started_at") <= time_of(retrying, "at")
    record = await status_becomes(gateway, accepted["id"], "succeeded")
    first, second = record["attempts"]
    assert time_of(first, "started_at") == time_of(retrying, "started_at")
    assert time_of(second, "started_at") == time_of(final, "started_at")


async def test_a_slow_task_publishes_running_once_the_delay_passed_then_its_outcome(
    gateway: Client, start_consumer: StartConsumer, events: Events, settings: Settings
) -> None:
    await start_consumer("diag", settings_=with_delay(settings))
    accepted = await submit(gateway, {"type": "diag.sleep", "payload": {"ms": 800}})

    running = await status_becomes(gateway, accepted["id"], "running")
    succeeded = await events.final(accepted["id"])
    assert statuses(events, accepted["id"]) == ["running", "succeeded"]
    [running_event] = events.of(accepted["id"], "running")
    started = time_of(running_event, "started_at")
    assert (time_of(running_event, "at") - started).total_seconds() >= DEFAULT_DELAY * 0.95
    assert time_of(succeeded, "started_at") == started
    # The record shows when the attempt started, not when `running` was published.
    assert time_of(running, "started_at") == started
    done = await get_task(gateway, accepted["id"], wait=10)
    assert done["status"] == "succeeded" and time_of(done, "started_at") == started


async def test_with_no_delay_running_always_comes_first(
    gateway: Client, start_consumer: StartConsumer, events: Events, settings: Settings
) -> None:
    await start_consumer("diag", settings_=with_delay(settings, 0.0))
    accepted = [await submit(gateway, ECHO) for _ in range(5)]

    for task in accepted:
        succeeded = await events.final(task["id"])
        assert statuses(events, task["id"]) == ["running", "succeeded"]
        [running] = events.of(task["id"], "running")
        assert running["started_at"] == succeeded["started_at"]


async def test_a_task_cancelled_while_queued_never_ran_and_says_no_start(
    gateway: Client, start_consumer: StartConsumer, events: Events, settings: Settings
) -> None:
    accepted = await submit(gateway, ECHO)
    assert (await gateway.delete(f"/v1/tasks/{accepted['id']}")).status == 202
    await start_consumer("diag", settings_=with_delay(settings))

    await events.wait_for(lambda _: statuses(events, accepted["id"]) == ["cancelled"])
    [cancelled] = events.of(accepted["id"])
    assert "started_at" not in cancelled
    record = await status_becomes(gateway, accepted["id"], "cancelled")
    assert record["started_at"] is None and record["attempts"][0]["started_at"] is None
