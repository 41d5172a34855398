"""Poison at the AMQP level: properties and headers the client library cannot decode or encode.

Every message is a real publish to the work queue, written frame by frame
(``tests/raw_amqp.py``) so that values aio-pika refuses to encode reach the
broker, which passes them on. Without Warren's handling, the first kind (a
value pamqp cannot decode) drops the consumer's connection on every delivery:
the queue sits without a consumer and redelivers the tasks in flight beside it,
again and again. The second kind (an outcome the client cannot encode) leaves
the delivery unacked, holding a prefetch slot, while ``/readyz`` says ready and
the in-flight gauge 0. Now each is dead-lettered with its reason, with a
``dead`` event where its task id is readable; the tasks around it run once,
never redelivered; and nothing is left unacked.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aio_pika.abc import AbstractChannel

from tests.conftest import BROKER_URL, StartConsumer
from tests.processes import until
from tests.raw_amqp import Raw, RawPublisher, properties_of, raw_timestamp, table_with
from tests.support import Events, drain, first_attempt, message_count, queue_counts
from tests.test_envelope import sample_envelope
from warren.service.frames import H_UNREADABLE
from warren.service.settings import Settings
from warren.service.topology import Declared, Names
from warren.service.wire import Envelope
from warren.service.wire.dead import H_DEAD_ERROR, H_DEAD_REASON
from warren.service.wire.envelope import H_TIMEOUT_MS

FAR_FUTURE = 2**63  # seconds: pamqp reads it as milliseconds, still past the year 9999
H_CASE = "test-case"


def long_string(raw: bytes) -> bytes:
    return b"S" + struct.pack(">I", len(raw)) + raw


@dataclass(frozen=True)
class Poison:
    """One poison message: how its properties are changed, what its dead letter must say."""

    reason: str
    error: str  # a part of ``warren-dead-error``
    envelope: Envelope = field(default_factory=sample_envelope)
    changes: Callable[[dict[str, Any]], dict[str, Any]] = lambda headers: {}
    headers: dict[str, Any] = field(default_factory=dict)  # set on the envelope's headers
    event: bool = True  # a task id is readable: the event stream hears of it

    def properties(self, case: str) -> dict[str, Any]:
        message = self.envelope.to_message()
        headers = {**message.headers, **self.headers, H_CASE: case}
        return properties_of(message, **{"headers": headers, **self.changes(headers)})


POISON = {
    "timestamp property far in the future": Poison(
        "unreadable-properties",
        f"property timestamp: timestamp {FAR_FUTURE} is out of range",
        changes=lambda _: {"timestamp": raw_timestamp(FAR_FUTURE)},
    ),
    "timestamp header far in the future": Poison(
        "unreadable-properties",
        "headers['sent-at']: timestamp",
        changes=lambda h: {
            "headers": table_with(h, {b"sent-at": b"T" + raw_timestamp(2**63).encoded})
        },
    ),
    "header name that is not UTF-8": Poison(
        "unreadable-properties",
        "headers: a name that is not UTF-8",
        changes=lambda h: {"headers": table_with(h, {b"\xff\xfe": long_string(b"a")})},
    ),
    "message_id that is not UTF-8": Poison(
        "unreadable-properties",
        "property message_id: not UTF-8",
        changes=lambda _: {"message_id": Raw(b"\x02\xff\xfe")},
        event=False,
    ),
    # pamqp decodes it as bytes, which it cannot encode again: the dead letter copies headers.
    "header value that is not UTF-8, on an invalid payload": Poison(
        "invalid-payload",
        "message",
        envelope=sample_envelope(body=b'{"message": 5}'),
        changes=lambda h: {"headers": table_with(h, {b"note": long_string(b"\xff\xfe")})},
    ),
    # It would become the routing key of its retry and events: longer than AMQP allows.
    "queue header too long for a routing key": Poison(
        "bad-header",
        "is not 'diag'",
        envelope=sample_envelope(queue="diag" + "x" * 300),
    ),
    # Its retry carries the timeout back in milliseconds: 2**63, beyond a signed 64-bit int.
    "a retry the client cannot encode": Poison(
        "unsettleable",
        "Unsupported numeric value",
        envelope=sample_envelope(type="diag.fail", body=b'{"permanent": false}'),
        headers={H_TIMEOUT_MS: 2**63 - 1},
    ),
}


async def test_amqp_level_poison_is_dead_lettered_and_stalls_nothing(
    start_consumer: StartConsumer,
    declared: Declared,
    settings: Settings,
    channel: AbstractChannel,
    events: Events,
) -> None:
    names = Names(settings.namespace)
    consumer = await start_consumer("diag", concurrency=2)
    # Given: each poison message between two good tasks, on one publishing connection.
    good = [first_attempt("diag.echo", {"message": f"good {i}"}) for i in range(len(POISON) + 1)]
    publisher = await RawPublisher.connect(BROKER_URL)
    try:
        for (case, poison), task in zip(POISON.items(), good, strict=False):
            await publisher.publish(names.work_exchange, "diag", task.body, properties_of(task))
            await publisher.publish(
                names.work_exchange, "diag", poison.envelope.body, poison.properties(case)
            )
        await publisher.publish(names.work_exchange, "diag", good[-1].body, properties_of(good[-1]))
    finally:
        await publisher.close()

    # Then: every poison message is in the dead-letter queue, with its reason.
    dead = await drain(declared.queues[names.dead_queue("diag")], len(POISON))
    by_case = {str(d.headers[H_CASE]): d for d in dead}
    assert by_case.keys() == POISON.keys()
    for case, poison in POISON.items():
        headers = by_case[case].headers
        assert (headers[H_DEAD_REASON], case) == (poison.reason, case)
        assert poison.error in str(headers[H_DEAD_ERROR]), (case, headers[H_DEAD_ERROR])
        assert by_case[case].body == poison.envelope.body
    unreadable = by_case["timestamp property far in the future"]
    assert unreadable.timestamp is None and H_UNREADABLE in unreadable.headers
    kept = by_case["header value that is not UTF-8, on an invalid payload"].headers["note"]
    assert isinstance(kept, bytearray) and kept == b"\xff\xfe"  # as it came, a byte array

    # And: a `dead` event for each whose task id is readable, under this queue's name.
    with_event = {p.envelope.id for p in POISON.values() if p.event}
    await events.wait_for(lambda _: all(events.of(i, "dead") for i in with_event))
    for poison in POISON.values():
        if poison.event:
            [event] = events.of(poison.envelope.id, "dead")
            assert (event["reason"], event["queue"]) == (poison.reason, "diag")

    # And: every good task ran once, never redelivered (no connection was lost under it).
    for task in good:
        final = await events.final(task.id)
        assert final["status"] == "succeeded" and final["redelivered"] is False
        assert len(events.of(task.id, "succeeded")) == 1
    # the last event is routed before its confirm reaches the consumer, which then acks
    await until(lambda: consumer.inflight == 0, 10, "every delivery acked")
    assert consumer.ready
    assert (await queue_counts(channel, names.work_queue("diag")))[1] == 1

    # And: nothing was left unacked (closing the consumer would have requeued it).
    await consumer.stop(grace=1)
    assert await message_count(channel, names.work_queue("diag")) == 0
