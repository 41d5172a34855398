"""The clients' ``submit_batch`` and ``submit(..., wait=S)`` against a real gateway and consumer."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import StartConsumer
from warren.client import (
    AsyncClient,
    Client,
    Forbidden,
    Submission,
    TaskAccepted,
    TaskRecord,
    ValidationFailed,
)
from warren.service.tasks import diag_echo


async def test_submit_and_wait_returns_the_final_record(
    client: AsyncClient, start_consumer: StartConsumer
) -> None:
    await start_consumer("diag")
    record = await client.submit(diag_echo, {"message": "now"}, wait=10)
    assert isinstance(record, TaskRecord)
    assert record.status == "succeeded" and record.result == {"message": "now"}
    slow = await client.submit("diag.sleep", {"ms": 2000}, wait=0.2)
    assert isinstance(slow, TaskAccepted) and slow.status == "queued"
    with pytest.raises(ValueError, match="wait"):
        await client.submit("diag.echo", {"message": "x"}, wait=61)


async def test_a_batch_answers_each_task_in_order(client: AsyncClient) -> None:
    items = await client.submit_batch(
        [
            Submission("diag.echo", {"message": "a"}, idempotency_key="k1"),
            Submission(diag_echo, {"nope": 1}),  # refused locally: not sent
            Submission("diag.echo", {"nope": 1}),  # refused by the gateway
            Submission("diag.echo", {"message": "b"}, priority=5, idempotency_key=True),
        ]
    )
    assert isinstance(items[0], TaskAccepted) and items[0].idempotency_key == "k1"
    assert isinstance(items[1], ValidationFailed) and isinstance(items[2], ValidationFailed)
    assert items[2].errors and items[2].errors[0]["loc"][0] == "payload"
    assert isinstance(items[3], TaskAccepted) and items[3].idempotency_key
    again = await client.submit_batch(
        [Submission("diag.echo", {"message": "a"}, idempotency_key="k1")]
    )
    assert isinstance(again[0], TaskAccepted) and again[0].replayed and again[0].id == items[0].id


async def test_a_batch_refused_locally_sends_nothing(client: AsyncClient) -> None:
    items = await client.submit_batch([Submission(diag_echo, {"nope": 1})])
    assert len(items) == 1 and isinstance(items[0], ValidationFailed)


async def test_the_sync_client_batches_and_waits(url: str, start_consumer: StartConsumer) -> None:
    await start_consumer("diag")

    def scenario() -> None:
        with Client(url) as client:
            items = client.submit_batch(
                [Submission("diag.echo", {"message": str(i)}) for i in range(3)]
            )
            assert all(isinstance(item, TaskAccepted) for item in items)
            record = client.submit("diag.echo", {"message": "w"}, wait=10)
            assert isinstance(record, TaskRecord) and record.result == {"message": "w"}

    await asyncio.to_thread(scenario)


def test_a_batch_item_problem_is_typed_by_its_status() -> None:
    from warren.client._batch import _item

    item = _item({"problem": {"status": 403, "code": "forbidden-type", "title": "Forbidden"}}, None)
    assert isinstance(item, Forbidden) and item.code == "forbidden-type"
