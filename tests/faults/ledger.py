"""A Jepsen-style ledger: what clients were told, against what actually ran.

RabbitMQ's Jepsen suite classifies every element of a queue test as:

* **ok** — the enqueue was acknowledged and the element was dequeued;
* **lost** — acknowledged, never dequeued (the one unforgivable outcome);
* **recovered** — the enqueue failed or its outcome was unknown, yet it was
  dequeued (harmless: the client was never promised anything);
* **unexpected** — dequeued, but never attempted by any client;
* **duplicated** — dequeued more than once.

Here an *enqueue* is a submission (an HTTP ``202`` from the gateway, or a
publisher confirm when a test publishes straight to the work exchange), and
a *dequeue* is an outcome on the event stream: a ``succeeded`` event (the
side effect ran) or a ``dead`` event (it ended in a dead-letter queue with its
reason — the other outcome Warren promises). Each submission carries a
client-chosen key in its payload (``diag.echo``'s message), so a task whose
``503`` hid an enqueue that happened anyway is still recognised as
*recovered* rather than *unexpected*.

Events are read from a durable queue the test binds to ``<ns>.events`` with
``#`` *before* the load: they are persistent and confirmed by the consumer
before it acks, so they survive the same broker crashes the tasks do. The
queue is read with acks; a ledger delivery repeated by a fault has the same
events and is counted once, while a task that really ran twice has two events
with different ``at`` times and is counted twice. Consumers publish events in
batches: every message is read with the one decoding helper
(``warren.service.wire.event_objects``), batches and single events alike.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractIncomingMessage

from warren.service.topology import Names
from warren.service.wire import event_objects

FINAL = ("succeeded", "dead")


class Told(StrEnum):
    """What a client was told about its submission."""

    ACCEPTED = "accepted"  # 202, or a publisher confirm: a promise
    REFUSED = "refused"  # 503/429: no promise (the task may still have been enqueued)
    UNKNOWN = "unknown"  # no answer at all: client timeout or broken connection
    OTHER = "other"  # any other status: never acceptable under a fault


@dataclass(frozen=True)
class Answer:
    key: str
    told: Told
    status: int | None
    sent_at: float  # event-loop time
    answered_at: float
    task_id: str | None = None
    code: str | None = None  # the problem body's ``code`` of a refusal
    retry_after: str | None = None  # its ``Retry-After`` header


@dataclass
class Verdict:
    """The classification of one scenario's run; ``check`` holds it to the pass bar."""

    scenario: str
    attempted: int
    accepted: int
    refused: int
    unknown: int
    other: list[Answer]
    ok: int
    lost: list[str]
    recovered: list[str]
    unexpected: list[dict[str, Any]]
    duplicated: dict[str, int]
    dead: dict[str, str]
    restarted: dict[str, int]

    @property
    def extra_runs(self) -> int:
        """Completed runs beyond the first, over all tasks: duplicated side effects."""
        return sum(runs - 1 for runs in self.duplicated.values())

    @property
    def extra_starts(self) -> int:
        """Handler starts beyond the first of each attempt, completed or cut off.

        A cut-off run leaves no ``succeeded`` event but may have done part of
        its work, so the duplicate bound is checked on starts too.
        """
        return sum(starts - 1 for starts in self.restarted.values())

    def counts(self) -> dict[str, int]:
        return {
            "attempted": self.attempted,
            "accepted": self.accepted,
            "refused": self.refused,
            "unknown": self.unknown,
            "other_status": len(self.other),
            "ok": self.ok,
            "lost": len(self.lost),
            "recovered": len(self.recovered),
            "unexpected": len(self.unexpected),
            "duplicated": len(self.duplicated),
            "extra_runs": self.extra_runs,
            "extra_starts": self.extra_starts,
            "dead": len(self.dead),
        }

    def __str__(self) -> str:
        return f"{self.scenario}: " + ", ".join(f"{k}={v}" for k, v in self.counts().items())

    def check(self, max_extra_runs: int | None) -> None:
        """The pass bar: lost = 0, unexpected = 0, no odd answers, duplicates within bound.

        The bound applies to completed runs and to handler starts alike; None
        leaves duplicates unchecked here (a scenario that judges them apart).
        """
        report(self, max_extra_runs)
        assert not self.lost, f"{self}\nlost (accepted, never ran): {self.lost[:20]}"
        assert not self.unexpected, f"{self}\nunexpected: {self.unexpected[:5]}"
        assert not self.other, f"{self}\nanswers other than 202/503/429: {self.other[:5]}"
        if max_extra_runs is None:
            return
        assert self.extra_runs <= max_extra_runs, (
            f"{self}\nduplicates over the bound {max_extra_runs}: "
            f"{sorted(self.duplicated.items())[:20]}"
        )
        assert self.extra_starts <= max_extra_runs, (
            f"{self}\nrepeated starts over the bound {max_extra_runs}: "
            f"{sorted(self.restarted.items())[:20]}"
        )


def report(verdict: Verdict, bound: int | None) -> None:
    """Append the verdict to ``$WARREN_FAULTS_REPORT`` (JSON lines), when set, for CI logs."""
    path = os.environ.get("WARREN_FAULTS_REPORT")
    if path:
        with open(path, "a") as out:
            row = {"scenario": verdict.scenario, **verdict.counts(), "duplicate_bound": bound}
            out.write(json.dumps(row) + "\n")


@dataclass
class Ledger:
    """Answers given to clients, and final outcomes seen on the event stream."""

    scenario: str
    answers: dict[str, Answer] = field(default_factory=dict)
    by_task: dict[str, str] = field(default_factory=dict)
    runs: Counter[str] = field(default_factory=Counter)
    dead: dict[str, str] = field(default_factory=dict)
    unexpected: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    starts: Counter[str] = field(default_factory=Counter)
    _seen: set[bytes] = field(default_factory=set)

    # --- what clients were told ---------------------------------------------------

    def tell(self, answer: Answer) -> None:
        assert answer.key not in self.answers, f"key {answer.key} submitted twice"
        self.answers[answer.key] = answer
        if answer.task_id is not None:
            self.by_task[answer.task_id] = answer.key

    def confirmed(self, task_id: str) -> None:
        """A task published straight to the work exchange and confirmed (key = task id)."""
        now = asyncio.get_running_loop().time()
        self.tell(Answer(task_id, Told.ACCEPTED, None, now, now, task_id))

    def told(self, *kinds: Told) -> list[Answer]:
        return [a for a in self.answers.values() if a.told in kinds]

    # --- what ran -----------------------------------------------------------------

    def observe(self, body: bytes, headers: Mapping[str, Any] | None) -> None:
        """One message off the ledger queue: a batch of events, or one event alone."""
        for event in event_objects(body, headers):
            self._observe(event)

    def _observe(self, event: dict[str, Any]) -> None:
        """One event; the same event twice (a batch delivered again) is one event."""
        identity = orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
        if identity in self._seen:
            return
        self._seen.add(identity)
        self.events.append(event)
        if event["status"] == "running":
            self.starts[f"{event['task_id']}.{event['attempt']}"] += 1
        if event["status"] not in FINAL:
            return
        key = self._key_of(event)
        if key is None:
            self.unexpected.append(event)
            return
        self.runs[key] += 1
        if event["status"] == "dead":
            self.dead[key] = str(event.get("reason"))

    def _key_of(self, event: dict[str, Any]) -> str | None:
        key = self.by_task.get(event["task_id"])
        if key is not None:
            return key
        result = event.get("result")
        marker = result.get("message") if isinstance(result, dict) else None
        if isinstance(marker, str) and marker in self.answers:
            self.by_task[event["task_id"]] = marker
            return marker
        return None

    def of(self, task_id: str, status: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events if e["task_id"] == task_id and status in (None, e["status"])]

    def finished(self) -> bool:
        """Every accepted task has reached an outcome at least once."""
        return all(self.runs[a.key] > 0 for a in self.told(Told.ACCEPTED))

    def verdict(self) -> Verdict:
        accepted = self.told(Told.ACCEPTED)
        not_promised = self.told(Told.REFUSED, Told.UNKNOWN)
        return Verdict(
            scenario=self.scenario,
            attempted=len(self.answers),
            accepted=len(accepted),
            refused=len(self.told(Told.REFUSED)),
            unknown=len(self.told(Told.UNKNOWN)),
            other=self.told(Told.OTHER),
            ok=sum(1 for a in accepted if self.runs[a.key] >= 1),
            lost=[a.key for a in accepted if self.runs[a.key] == 0],
            recovered=[a.key for a in not_promised if self.runs[a.key] > 0],
            unexpected=list(self.unexpected),
            duplicated={k: n for k, n in self.runs.items() if n > 1},
            dead=dict(self.dead),
            restarted={k: n for k, n in self.starts.items() if n > 1},
        )


class EventTap:
    """A durable queue bound to ``<ns>.events`` with ``#`` on the faulted node: the ledger's eyes.

    Declared before the load so that every event is kept, across broker
    restarts too; read only in calm moments (``collect``), on a fresh
    connection each time, so no fault ever interrupts the reading itself.
    """

    def __init__(self, url: str, names: Names, queue_type: str = "classic") -> None:
        self.url = url
        self.names = names
        self.queue = f"{names.namespace}.faults-ledger"
        self._arguments: dict[str, Any] = {"x-queue-type": queue_type}

    async def declare(self) -> None:
        connection = await aio_pika.connect(self.url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(
                self.names.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(self.queue, durable=True, arguments=self._arguments)
            await queue.bind(exchange, "#")

    async def collect(
        self,
        ledger: Ledger,
        until: Callable[[], bool],
        within: float,
        linger: float = 1.0,
        explain: Callable[[], str] | None = None,
    ) -> None:
        """Feed events to ``ledger`` until ``until()`` holds, then ``linger`` for stragglers."""
        changed = asyncio.Event()

        async def on_message(message: AbstractIncomingMessage) -> None:
            ledger.observe(message.body, message.headers)
            await message.ack()
            changed.set()

        connection = await aio_pika.connect(self.url)
        async with connection:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=500)
            queue = await channel.declare_queue(self.queue, durable=True, arguments=self._arguments)
            await queue.consume(on_message)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + within
            while not until():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    detail = f"\n{explain()}" if explain else ""
                    raise AssertionError(
                        f"waited {within}s for the outcomes; {ledger.verdict()}{detail}"
                    )
                changed.clear()
                try:
                    async with asyncio.timeout(min(remaining, 0.5)):
                        await changed.wait()
                except TimeoutError:
                    pass
            await asyncio.sleep(linger)
