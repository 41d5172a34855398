"""The clients' ``delay_seconds`` / ``run_at`` against a real gateway, broker and consumer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from tests.conftest import StartConsumer
from warren.client import AsyncClient, Client, Submission, TaskAccepted, ValidationFailed


async def test_a_delayed_submission_is_scheduled_then_runs_when_due(
    client: AsyncClient, start_consumer: StartConsumer
) -> None:
    await start_consumer("diag")
    before = datetime.now(UTC)
    accepted = await client.submit("diag.echo", {"message": "later"}, delay_seconds=2)
    assert accepted.status == "scheduled" and accepted.due_at is not None
    assert before + timedelta(seconds=2) <= accepted.due_at <= before + timedelta(seconds=4)
    assert (await client.get(accepted.id)).status == "scheduled"
    record = await client.wait(accepted.id, timeout=30)
    assert record.status == "succeeded" and record.result == {"message": "later"}
    assert record.started_at is not None and record.started_at >= accepted.due_at


async def test_run_at_is_sent_as_rfc3339_with_its_offset(client: AsyncClient) -> None:
    # Given a due time in another zone, two minutes ahead, to the second
    paris = timezone(timedelta(hours=1))
    due = (datetime.now(paris) + timedelta(minutes=2)).replace(microsecond=0)
    # When it is submitted, Then the gateway schedules it at that instant
    accepted = await client.submit("diag.echo", {"message": "x"}, run_at=due)
    assert accepted.status == "scheduled" and accepted.due_at == due
    assert (await client.get(accepted.id)).due_at == due
    await client.cancel(accepted.id)


async def test_both_or_a_naive_time_are_refused_as_the_gateway_refuses_them(
    client: AsyncClient, url: str
) -> None:
    due = datetime.now(UTC) + timedelta(minutes=1)
    with pytest.raises(ValidationFailed) as local:
        await client.submit("diag.echo", {"message": "x"}, delay_seconds=5, run_at=due)
    body = {"type": "diag.echo", "payload": {"message": "x"}}
    async with httpx.AsyncClient(base_url=url) as raw:
        answer = await raw.post(
            "/v1/tasks", json={**body, "delay_seconds": 5, "run_at": due.isoformat()}
        )
    assert answer.status_code == 422
    remote = answer.json()
    assert local.value.code == remote["code"] == "validation-failed"
    assert local.value.errors == remote["errors"]
    assert local.value.detail == remote["detail"]
    with pytest.raises(ValidationFailed, match="timezone"):
        await client.submit("diag.echo", {"message": "x"}, run_at=datetime.now())
    with pytest.raises(ValidationFailed):
        await client.submit("diag.echo", {"message": "x"}, delay_seconds=-1)


async def test_the_sync_client_and_batches_delay_too(url: str) -> None:
    due = datetime.now(UTC) + timedelta(minutes=5)

    def submit() -> list[object]:
        with Client(url) as client:
            one = client.submit("diag.echo", {"message": "a"}, delay_seconds=120)
            items = client.submit_batch(
                [
                    Submission("diag.echo", {"message": "b"}, delay_seconds=60),
                    Submission("diag.echo", {"message": "c"}, run_at=due),
                    Submission("diag.echo", {"message": "d"}, delay_seconds=1, run_at=due),
                    Submission("diag.echo", {"message": "e"}),
                ]
            )
            for item in [one, *items]:
                if isinstance(item, TaskAccepted):
                    client.cancel(item.id)
            return [one, *items]

    one, later, at, both, now = await asyncio.to_thread(submit)
    assert isinstance(one, TaskAccepted) and one.status == "scheduled"
    assert isinstance(later, TaskAccepted) and later.status == "scheduled"
    assert isinstance(at, TaskAccepted) and at.due_at == due
    assert isinstance(both, ValidationFailed)  # refused locally, not sent
    assert isinstance(now, TaskAccepted) and now.status == "queued" and now.due_at is None
