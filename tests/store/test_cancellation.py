"""DELETE /v1/tasks/{id}: before the run, while running, after the end; and the consumer's side."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import StartConsumer
from tests.store.support import Client, get_task, status_becomes, submit
from tests.support import Events
from warren.consumers.cancellation import Cancellations, TaskCancelled
from warren.service.store.model import new_task_id

SLEEP_LONG = {"type": "diag.sleep", "payload": {"ms": 60_000}}


async def test_a_task_cancelled_before_any_consumer_runs_is_never_run(
    gateway: Client, start_consumer: StartConsumer, events: Events
) -> None:
    accepted = await submit(gateway, {"type": "diag.echo", "payload": {"message": "no"}})
    response = await gateway.delete(f"/v1/tasks/{accepted['id']}")
    assert response.status == 202
    requested = await response.json()
    assert requested["status"] == "queued" and requested["cancel_requested_at"]
    # This consumer starts after the broadcast: it reads it back from the control stream.
    await start_consumer("diag")
    record = await get_task(gateway, accepted["id"], wait=10)
    assert record["status"] == "cancelled" and record["reason"] == "cancel-requested"
    assert [(a["attempt"], a["outcome"], a["started_at"]) for a in record["attempts"]] == [
        (1, "cancelled", None)
    ]
    assert events.of(accepted["id"], "running") == []


async def test_a_running_task_is_cancelled_cooperatively(
    gateway: Client, start_consumer: StartConsumer
) -> None:
    await start_consumer("diag")
    accepted = await submit(gateway, SLEEP_LONG)
    await status_becomes(gateway, accepted["id"], "running")
    started = time.monotonic()
    assert (await gateway.delete(f"/v1/tasks/{accepted['id']}")).status == 202
    record = await get_task(gateway, accepted["id"], wait=10)
    assert record["status"] == "cancelled" and time.monotonic() - started < 3
    [attempt] = record["attempts"]
    assert attempt["outcome"] == "cancelled" and attempt["started_at"] and attempt["finished_at"]


async def test_a_finished_task_cannot_be_cancelled_and_a_cancelled_one_stays_so(
    gateway: Client, start_consumer: StartConsumer
) -> None:
    await start_consumer("diag")
    done = await submit(gateway, {"type": "diag.echo", "payload": {"message": "done"}})
    await get_task(gateway, done["id"], wait=10)
    response = await gateway.delete(f"/v1/tasks/{done['id']}")
    assert response.status == 409 and (await response.json())["code"] == "task-finished"
    running = await submit(gateway, SLEEP_LONG)
    await status_becomes(gateway, running["id"], "running")
    await gateway.delete(f"/v1/tasks/{running['id']}")
    await status_becomes(gateway, running["id"], "cancelled")
    again = await gateway.delete(f"/v1/tasks/{running['id']}")
    assert again.status == 200 and (await again.json())["status"] == "cancelled"
    assert (await gateway.delete(f"/v1/tasks/{new_task_id()}")).status == 404


# --- the consumer's side, without a broker ------------------------------------------


async def test_guard_turns_a_requested_cancellation_into_task_cancelled() -> None:
    cancellations = Cancellations()
    started = asyncio.Event()

    async def handler() -> str:
        started.set()
        await asyncio.sleep(60)
        return "never"

    attempt = asyncio.create_task(cancellations.guard("t1", handler(), interruptible=True))
    await started.wait()
    cancellations.cancel("t1")
    with pytest.raises(TaskCancelled):
        await attempt
    assert cancellations.is_cancelled("t1")
    with pytest.raises(TaskCancelled):  # a later attempt does not even start
        await cancellations.guard("t1", handler(), interruptible=True)


async def test_a_stopping_consumer_is_not_mistaken_for_a_cancellation() -> None:
    cancellations = Cancellations()
    started = asyncio.Event()

    async def handler() -> None:
        started.set()
        await asyncio.sleep(60)

    attempt = asyncio.create_task(cancellations.guard("t2", handler(), interruptible=True))
    await started.wait()
    attempt.cancel()  # what the consumer's shutdown does: the delivery is then requeued
    with pytest.raises(asyncio.CancelledError):
        await attempt


async def test_a_handler_that_swallows_the_cancellation_leaves_its_delivery_task_usable() -> None:
    """The attempt runs in the delivery's own task: a cancellation the handler swallowed must
    not stay counted on that task (``cancelling``), or an ``asyncio.timeout`` in what follows
    would take its expiry for an outside cancellation."""
    cancellations = Cancellations()
    started = asyncio.Event()

    async def handler() -> str:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            return "finished anyway"
        return "never"

    async def delivery() -> tuple[str, int, str]:
        result = await cancellations.guard("t4", handler(), interruptible=True)
        task = asyncio.current_task()
        assert task is not None
        await asyncio.sleep(0.01)  # the settle goes on in the same task
        return result, task.cancelling(), "settled"

    attempt = asyncio.create_task(delivery())
    await started.wait()
    cancellations.cancel("t4")
    assert await attempt == ("finished anyway", 0, "settled")


async def test_a_sync_handler_is_not_interrupted_and_its_outcome_stands() -> None:
    cancellations = Cancellations()
    loop = asyncio.get_running_loop()

    def work() -> str:
        time.sleep(0.2)
        return "finished"

    async def sync_handler() -> str:  # what the delivery path does for a plain `def` handler
        return await loop.run_in_executor(None, work)

    attempt = asyncio.create_task(cancellations.guard("t3", sync_handler(), interruptible=False))
    await asyncio.sleep(0.05)
    cancellations.cancel("t3")
    assert await attempt == "finished"


def test_remembered_ids_expire_and_are_bounded() -> None:
    cancellations = Cancellations(retention_seconds=60, max_entries=3)
    cancellations.cancel("old", datetime.now(UTC) - timedelta(seconds=61))
    assert not cancellations.is_cancelled("old")  # broadcast longer ago than the retention
    for task in ("a", "b", "c", "d"):
        cancellations.cancel(task)
    assert not cancellations.is_cancelled("a")  # the oldest went first
    assert all(cancellations.is_cancelled(t) for t in ("b", "c", "d"))
