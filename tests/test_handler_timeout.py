"""A handler that outlasts its task's timeout is stopped, and the attempt fails as a timeout.

Time limits are enforced by one timer per consumer process
(``warren.consumers.deadlines``), not one per attempt: these tests hold that
the slow attempt is still stopped, reported as ``TimeoutError`` and
dead-lettered once its attempts are spent, while the attempts around it finish.
"""

from __future__ import annotations

from dataclasses import replace

from tests.conftest import StartConsumer
from tests.support import Events, drain, first_attempt
from warren.service.settings import Settings
from warren.service.topology import Declared, Names
from warren.service.wire import Envelope
from warren.service.wire.dead import H_DEAD_ERROR_TYPE, H_DEAD_REASON


async def publish(declared: Declared, names: Names, envelope: Envelope) -> None:
    message = envelope.to_message()
    await declared.exchanges[names.work_exchange].publish(message, routing_key=envelope.queue)


async def test_a_handler_past_its_timeout_is_stopped_and_dead_lettered_as_a_timeout(
    start_consumer: StartConsumer, declared: Declared, settings: Settings, events: Events
) -> None:
    names = Names(settings.namespace)
    slow = replace(first_attempt("diag.sleep", {"ms": 60_000}), timeout_seconds=0.5, max_attempts=1)
    in_time = replace(first_attempt("diag.sleep", {"ms": 100}), timeout_seconds=5)
    quick = [first_attempt("diag.echo", {"message": f"quick {i}"}) for i in range(20)]
    for envelope in (slow, in_time, *quick):
        await publish(declared, names, envelope)

    await start_consumer("diag")

    final = await events.final(slow.id)
    assert (final["status"], final["reason"]) == ("dead", "attempts-exhausted")
    assert final["error_type"] == "TimeoutError"
    assert "timeout" in final["error"]
    [dead] = await drain(declared.queues[names.dead_queue("diag")], 1)
    assert dead.message_id == slow.id
    assert dead.headers[H_DEAD_REASON] == "attempts-exhausted"
    assert dead.headers[H_DEAD_ERROR_TYPE] == "TimeoutError"
    for envelope in (in_time, *quick):
        assert (await events.final(envelope.id))["status"] == "succeeded"
