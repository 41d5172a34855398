"""``Client``, the blocking twin of ``AsyncClient``: the same surface, the same answers.

Its calls run in a thread so that the test's loop keeps serving the in-process gateway.
"""

from __future__ import annotations

import asyncio
import inspect

import pytest

from tests.client.support import Answer, Front
from tests.conftest import StartConsumer
from warren.client import (
    AsyncClient,
    BadRequest,
    Client,
    Conflict,
    RetryPolicy,
    Status,
    TaskFailed,
    ValidationFailed,
)
from warren.service.store.model import Status as ServerStatus
from warren.service.tasks import diag_echo

ECHO = {"message": "hi"}


def test_both_clients_have_the_same_surface() -> None:
    def public(cls: type) -> dict[str, inspect.Signature]:
        return {
            name: inspect.signature(member)
            for name, member in vars(cls).items()
            if callable(member) and not name.startswith("_")
        }

    sync, aio = public(Client), public(AsyncClient)
    assert sync.pop("close") and aio.pop("aclose")
    assert sync.keys() == aio.keys() >= {"submit", "get", "wait", "result", "cancel", "list"}
    for name, signature in sync.items():
        assert [*signature.parameters] == [*aio[name].parameters], name
        is_async = inspect.iscoroutinefunction(getattr(AsyncClient, name))
        assert is_async or inspect.isasyncgenfunction(getattr(AsyncClient, name)), name


def test_the_client_knows_every_status_of_the_gateway() -> None:
    assert {s.value for s in Status} == {s.value for s in ServerStatus}
    assert {s for s in Status if s.final} == {"succeeded", "dead", "cancelled"}


async def test_the_sync_client_end_to_end(url: str, start_consumer: StartConsumer) -> None:
    await start_consumer("diag")

    def scenario() -> None:
        with Client(url) as client:
            accepted = client.submit(diag_echo, ECHO, idempotency_key=True)
            key = accepted.idempotency_key
            assert client.submit("diag.echo", ECHO, idempotency_key=key).replayed
            assert client.result(accepted.id, timeout=15) == ECHO
            statuses = [record.status for record in client.events(accepted.id)]
            assert statuses == [Status.SUCCEEDED]  # already final: one event, then the end
            dead = client.submit("diag.fail", {"permanent": True})
            with pytest.raises(TaskFailed):
                client.result(dead.id, timeout=15)
            assert [r.id for r in client.list(page_size=1)] == [dead.id, accepted.id]
            assert client.get(dead.id).status is Status.DEAD
            with pytest.raises(Conflict):
                client.cancel(dead.id)
            with pytest.raises(ValidationFailed):
                client.submit(diag_echo, {})

    await asyncio.to_thread(scenario)


async def test_the_sync_client_retries_a_503(front: tuple[Front, str]) -> None:
    door, url = front
    door.script = [Answer("POST", 503, retry_after="1")]

    def submit() -> str:
        with Client(url, retry=RetryPolicy(backoff_seconds=0.05)) as client:
            return client.submit("diag.echo", ECHO).id

    assert await asyncio.to_thread(submit)
    refused, forwarded = door.times("POST")
    assert forwarded - refused >= 1.0


async def test_an_answer_that_is_not_problem_json_is_typed_all_the_same(url: str) -> None:
    # A header over the gateway's limit: aiohttp's parser answers 400 in text/plain.
    def get() -> BadRequest:
        with Client(url, headers={"X-Big": "x" * 9000}) as client, pytest.raises(BadRequest) as bad:
            client.get("0" * 32)
        return bad.value

    bad = await asyncio.to_thread(get)
    assert (bad.status, bad.code) == (400, "http-400") and bad.detail
