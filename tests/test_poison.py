"""Poison messages published straight to a work queue are dead-lettered with their reason.

None is dropped, none is requeued into a loop, and the consumer keeps serving.
"""

from __future__ import annotations

from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel

from tests.conftest import StartConsumer
from tests.support import Events, drain, message_count
from tests.test_envelope import sample_envelope
from warren.service.settings import Settings
from warren.service.topology import Declared, Names
from warren.service.wire.dead import H_DEAD_ATTEMPTS, H_DEAD_QUEUE, H_DEAD_REASON
from warren.service.wire.envelope import H_CREATED_AT, H_TIMEOUT_MS, H_TYPE, H_VERSION


def envelope_message(**changes: Any) -> aio_pika.Message:
    return sample_envelope(**changes).to_message()


def without_header(name: str) -> aio_pika.Message:
    message = envelope_message()
    del message.headers[name]
    return message


def envelope_message_with(name: str, value: int | str) -> aio_pika.Message:
    message = envelope_message()
    message.headers[name] = value
    return message


def type_mismatch() -> aio_pika.Message:
    message = envelope_message()
    message.type = "diag.sleep"
    return message


def with_content_type(content_type: str | None) -> aio_pika.Message:
    message = envelope_message()
    message.content_type = content_type
    return message


POISON: dict[str, tuple[aio_pika.Message, str]] = {
    "not json": (envelope_message(body=b"{not json"), "not-json"),
    "not utf-8": (envelope_message(body=b'{"message": "\xff\xfe"}'), "not-json"),
    "json but wrong payload": (envelope_message(body=b'{"message": 5}'), "invalid-payload"),
    "extra payload field": (
        envelope_message(body=b'{"message": "a", "x": 1}'),
        "invalid-payload",
    ),
    "unknown type": (envelope_message(type="diag.nope"), "unknown-type"),
    "type of another queue": (envelope_message(type="email.send"), "unknown-type"),
    "wrong content type": (with_content_type("text/plain"), "wrong-content-type"),
    "no content type": (with_content_type(None), "wrong-content-type"),
    "missing version": (without_header(H_VERSION), "missing-header"),
    "version from the future": (envelope_message_with(H_VERSION, 2), "unsupported-version"),
    "type property disagrees with header": (type_mismatch(), "bad-header"),
    "missing type header": (without_header(H_TYPE), "missing-header"),
    "timeout of zero": (envelope_message_with(H_TIMEOUT_MS, 0), "bad-header"),
    "creation time without offset": (
        envelope_message_with(H_CREATED_AT, "2026-01-01T00:00:00"),
        "bad-header",
    ),
    "bare bytes, no headers": (
        aio_pika.Message(b"hello", content_type="application/json"),
        "missing-header",
    ),
    "oversized": (
        envelope_message(body=b'{"message": "' + b"x" * 300_000 + b'"}'),
        "too-large",
    ),
}


async def test_each_poison_message_is_dead_lettered_with_its_reason(
    start_consumer: StartConsumer,
    declared: Declared,
    settings: Settings,
    channel: AbstractChannel,
    events: Events,
) -> None:
    names = Names(settings.namespace)
    await start_consumer("diag")
    work = declared.exchanges[names.work_exchange]
    for message, _ in POISON.values():
        await work.publish(message, routing_key="diag")

    dead = await drain(declared.queues[names.dead_queue("diag")], len(POISON))

    assert sorted(str(d.headers[H_DEAD_REASON]) for d in dead) == sorted(
        reason for _, reason in POISON.values()
    )
    assert all(d.headers[H_DEAD_QUEUE] == "diag" for d in dead)
    assert {d.body for d in dead} == {m.body for m, _ in POISON.values()}
    # Where the envelope was readable, the event stream hears of the death too.
    dead_events = await events.wait_for(lambda items: len(items) >= 7)
    assert {e["reason"] for e in dead_events if e["status"] == "dead"} == {
        "not-json",
        "invalid-payload",
        "unknown-type",
        "too-large",
    }
    # The consumer is still alive and serving: a good task after the poison succeeds.
    good = sample_envelope(body=b'{"message":"still here"}')
    await work.publish(good.to_message(), routing_key="diag")
    final = await events.final(good.id)
    assert final["status"] == "succeeded"
    assert await message_count(channel, names.work_queue("diag")) == 0


@pytest.mark.parametrize("attempts", [0])
async def test_poison_counts_no_attempt(
    start_consumer: StartConsumer, declared: Declared, settings: Settings, attempts: int
) -> None:
    names = Names(settings.namespace)
    await start_consumer("diag")
    await declared.exchanges[names.work_exchange].publish(
        envelope_message(body=b"[]"), routing_key="diag"
    )
    [dead] = await drain(declared.queues[names.dead_queue("diag")], 1)
    assert dead.headers[H_DEAD_REASON] == "invalid-payload"
    assert dead.headers[H_DEAD_ATTEMPTS] == attempts
