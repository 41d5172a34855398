"""``AsyncClient`` against a real gateway and real consumers on the real broker."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest
from aio_pika.abc import AbstractChannel
from opentelemetry import trace

from tests.client.support import Front
from tests.conftest import StartConsumer
from tests.support import message_count
from warren.client import (
    AsyncClient,
    BadRequest,
    Conflict,
    ConnectionFailed,
    NotFound,
    Status,
    TaskFailed,
    ValidationFailed,
    WaitTimeout,
    _calls,
)
from warren.service.settings import Settings
from warren.service.tasks import EchoPayload, diag_echo, diag_flaky

ECHO = {"message": "hi"}


async def test_submit_by_name_then_wait_and_result(
    client: AsyncClient, start_consumer: StartConsumer
) -> None:
    await start_consumer("diag")
    accepted = await client.submit("diag.echo", ECHO)
    assert (accepted.type, accepted.queue, accepted.status) == ("diag.echo", "diag", "queued")
    assert accepted.trace_id is not None and len(accepted.trace_id) == 32
    assert not accepted.replayed and accepted.idempotency_key is None

    record = await client.wait(accepted.id, timeout=15)
    assert record.status is Status.SUCCEEDED and record.final
    assert record.result == ECHO and record.trace_id == accepted.trace_id
    assert record.attempts is not None and record.attempts[0].outcome is Status.SUCCEEDED
    assert await client.result(accepted.id, timeout=1) == ECHO
    assert (await client.get(accepted.id)).version == record.version


async def test_submit_by_contract_checks_the_payload_locally_as_the_gateway_would(
    client: AsyncClient, start_consumer: StartConsumer
) -> None:
    # Given a client of an address where nothing listens: a local refusal sends nothing.
    async with AsyncClient("http://127.0.0.1:9") as nowhere:
        with pytest.raises(ValidationFailed) as local:
            await nowhere.submit(diag_echo, {"message": 3})
        with pytest.raises(ValidationFailed) as capped:
            await nowhere.submit(diag_echo, ECHO, max_attempts=diag_echo.max_attempts_cap + 1)
    # Then it is the refusal the gateway answers for the same submission.
    with pytest.raises(ValidationFailed) as remote:
        await client.submit("diag.echo", {"message": 3})
    for refusal in (local.value, remote.value):
        assert (refusal.status, refusal.code) == (422, "validation-failed")
        (error,) = refusal.errors
        assert error == {
            "loc": ["payload", "message"],
            "msg": "Input should be a valid string",
            "type": "string_type",
        }
    assert local.value.detail == remote.value.detail == "payload of diag.echo"
    assert capped.value.errors[0]["loc"] == ["max_attempts"]

    await start_consumer("diag")
    accepted = await client.submit(diag_echo, EchoPayload(message="typed"))
    assert await client.result(accepted.id, timeout=15) == {"message": "typed"}


async def test_an_idempotency_key_replays_the_original_task(
    client: AsyncClient, channel: AbstractChannel, settings: Settings
) -> None:
    first = await client.submit("diag.echo", ECHO, idempotency_key=True)
    assert first.idempotency_key is not None and not first.replayed
    again = await client.submit("diag.echo", ECHO, idempotency_key=first.idempotency_key)
    assert again.replayed and again.id == first.id
    key = first.idempotency_key
    with pytest.raises(Conflict) as reused:
        await client.submit("diag.echo", {"message": "other"}, idempotency_key=key)
    assert reused.value.code == "idempotency-key-reused"
    assert await message_count(channel, f"{settings.namespace}.diag") == 1


async def test_error_answers_are_typed_with_their_code(client: AsyncClient) -> None:
    with pytest.raises(NotFound) as missing:
        await client.get("0" * 32)
    assert (missing.value.status, missing.value.code) == (404, "not-found")
    with pytest.raises(ValidationFailed) as unknown:
        await client.submit("diag.nope", {})
    assert unknown.value.errors[0]["type"] == "unknown_type"
    with pytest.raises(BadRequest) as bad:
        await client.list_page(since="yesterday")
    assert bad.value.code == "invalid-parameter"
    assert bad.value.errors[0]["loc"] == ["query", "since"]
    async with AsyncClient("http://127.0.0.1:9") as nowhere:
        with pytest.raises(ConnectionFailed) as refused:
            await nowhere.get("0" * 32)
    assert not refused.value.sent


async def test_a_dead_task_has_no_result(
    client: AsyncClient, start_consumer: StartConsumer
) -> None:
    await start_consumer("diag")
    accepted = await client.submit("diag.fail", {"permanent": True})
    with pytest.raises(TaskFailed) as failed:
        await client.result(accepted.id, timeout=15)
    record = failed.value.record
    assert record.status is Status.DEAD and record.error_type == "Permanent"
    assert "dead" in str(failed.value)


async def test_wait_gives_up_after_its_timeout_with_the_last_record(client: AsyncClient) -> None:
    accepted = await client.submit("diag.echo", ECHO)  # no consumer: it stays queued
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(WaitTimeout) as timed_out:
        await client.wait(accepted.id, timeout=0.5)
    assert 0.5 <= loop.time() - started < 3
    assert timed_out.value.record.status is Status.QUEUED
    assert isinstance(timed_out.value, TimeoutError)


async def test_cancel_a_running_task(client: AsyncClient, start_consumer: StartConsumer) -> None:
    await start_consumer("diag")
    accepted = await client.submit("diag.sleep", {"ms": 60_000})
    async with aclosing(client.events(accepted.id)) as events:  # closed when left early
        async for record in events:
            if record.status is Status.RUNNING:
                break
    requested = await client.cancel(accepted.id)
    assert requested.cancel_requested_at is not None
    with pytest.raises(TaskFailed) as cancelled:
        await client.result(accepted.id, timeout=15)
    assert cancelled.value.record.status is Status.CANCELLED
    assert (await client.cancel(accepted.id)).status is Status.CANCELLED  # said again: the same

    done = await client.submit("diag.echo", ECHO)
    await client.wait(done.id, timeout=15)
    with pytest.raises(Conflict) as finished:
        await client.cancel(done.id)
    assert finished.value.code == "task-finished"


async def test_list_follows_the_cursor_across_pages(
    client: AsyncClient, start_consumer: StartConsumer
) -> None:
    await start_consumer("diag")
    ids = [(await client.submit("diag.echo", {"message": str(i)})).id for i in range(5)]
    failed = await client.submit("diag.fail", {"permanent": True})
    for task_id in [*ids, failed.id]:
        await client.wait(task_id, timeout=15)

    listed = [r async for r in client.list(status="succeeded", type="diag.echo", page_size=2)]
    assert [r.id for r in listed] == ids[::-1]  # newest first, across three pages
    assert all(r.attempts is None for r in listed)  # list items carry no history
    first = await client.list_page(status=["succeeded", Status.DEAD], limit=4)
    assert len(first.items) == 4 and first.next_cursor is not None
    assert [r.id async for r in client.list(limit=3, page_size=2)] == [failed.id, *ids[:-3:-1]]
    assert [r.id async for r in client.list(status="dead")] == [failed.id]


async def test_events_follow_each_change_until_final(
    client: AsyncClient, start_consumer: StartConsumer
) -> None:
    accepted = await client.submit(diag_flaky, {"fail_times": 1})
    seen: list[Status] = []

    async def follow() -> None:
        async for record in client.events(accepted.id):
            seen.append(record.status)

    following = asyncio.create_task(follow())
    await asyncio.sleep(0.2)  # the stream is open, the task still queued
    await start_consumer("diag")
    await asyncio.wait_for(following, 15)
    assert seen[0] is Status.QUEUED and seen[-1] is Status.SUCCEEDED
    assert Status.RETRYING in seen


async def test_a_submission_joins_the_callers_trace(client: AsyncClient) -> None:
    with trace.get_tracer("test").start_as_current_span("caller") as caller:
        accepted = await client.submit("diag.echo", ECHO)
    assert accepted.trace_id == format(caller.get_span_context().trace_id, "032x")


async def test_wait_polls_again_past_the_gateways_cap(
    front: tuple[Front, str], start_consumer: StartConsumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_calls, "MAX_WAIT_SECONDS", 0.2)  # the gateway's is 60 s
    door, url = front
    await start_consumer("diag")
    async with AsyncClient(url) as client:
        accepted = await client.submit("diag.sleep", {"ms": 1000})
        assert (await client.wait(accepted.id, timeout=15)).status is Status.SUCCEEDED
    assert len(door.times("GET")) >= 4  # one long-poll per 0.2 s of the task's second
