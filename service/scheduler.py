"""``warren scheduler``: fires the app's schedules. Run any number of replicas: one leads.

Leadership comes from RabbitMQ alone. ``<ns>.scheduler.leader`` is a
single-active-consumer queue holding one token message: every replica
consumes it (prefetch 1), the broker delivers only to its one active consumer,
and that replica leads while it holds the token unacknowledged. When the
leader dies (even by SIGKILL) its connection closes, the broker requeues the
token and hands it to the next consumer, which leads from then on. The leader
trades its token for a fresh one every ``ROTATE_SECONDS`` (publish, then ack),
so no delivery stays unacknowledged past the broker's ``consumer_timeout``; the
token says up to when every tick was fired (``fired_through``).

Each tick fires once: its task has a deterministic id and an
``Idempotency-Key`` (``schedule@tick``, client ``Schedule.owner``), and firing
is the gateway's keyed submission: an insert-first claim in the task store,
the confirmed publish, then the claim marked published. A new leader fires
again every tick since its token's ``fired_through`` (a second earlier): the
claims of ticks the old leader fired stop them, published or not. A claim
left unpublished by a leader that died cannot say whether its publish was
confirmed (killed between confirm and store write) or never sent (killed
between claim and publish); the first case would fire the tick twice if the
claim were taken over, so it never is: such a tick fires at most once, and is
lost only when its leader died inside the second window (one publish round
trip), which the new leader logs. A claim released by a leader still alive (its
publish failed) is fired again.

After downtime (ticks older than ``MISFIRE_GRACE_SECONDS``), each schedule's
``missed`` policy decides: ``skip`` them, or fire the ``last`` one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from warren.service import topology
from warren.service.amqp import Publisher
from warren.service.apps import App
from warren.service.connections import connect
from warren.service.errors import PublishError
from warren.service.schedules import Schedule
from warren.service.settings import Settings
from warren.service.store import TaskRecord, TaskStore, open_store
from warren.service.store.merge import merge
from warren.service.store.model import Change, Status
from warren.service.wire import Envelope, leader_token, parse_leader_token, task_change

log = logging.getLogger(__name__)

ROTATE_SECONDS = 30.0  # well under RabbitMQ's consumer_timeout (30 min by default)
MISFIRE_GRACE_SECONDS = 60.0  # later than this, a tick was missed (downtime), not delayed
LOOKBACK = timedelta(seconds=1)  # ticks this close before fired_through are fired again
MAX_SLEEP_SECONDS = 1.0  # how soon a leader notices it lost the token
STALE_CLAIM_SECONDS = 10.0


def tick_claim(change: Change, key: str) -> TaskRecord:
    """The idempotency claim of a tick's task (its key ``schedule@tick``), unpublished."""
    return replace(
        merge(None, change),
        published=False,
        idempotency_key=key,
        request_hash=change.task_id,
        updated_at=datetime.now(UTC),  # a claim's age counts from now, not from its tick
    )


class LostLeadership(Exception):
    """The token's channel closed, or the fresh token did not come back."""


class Scheduler:
    """One replica: follows the leader queue, and fires ticks while it holds the token."""

    def __init__(self, settings: Settings, app: App) -> None:
        self.settings = settings
        self.namespace = settings.namespace
        self.schedules = tuple(app.schedules)
        self._catalog = app.catalog
        self._payloads = {s.id: s.payload_json(app.catalog) for s in app.schedules}
        self._shape = topology.build(settings, app.catalog.queues)
        self._tokens: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._connection: AbstractRobustConnection | None = None
        self._publisher: Publisher | None = None
        self._store: TaskStore | None = None
        self._leading: asyncio.Task[None] | None = None
        self.fired = 0

    @property
    def ready(self) -> bool:
        """Connected and following the leader queue (leading or standing by): a probe's
        readiness; a replica that lost the broker is alive but not ready."""
        connection = self._connection
        return (
            self._leading is not None
            and not self._leading.done()
            and connection is not None
            and connection.connected.is_set()
        )

    async def start(self) -> None:
        """Connect, open the store, follow the leader queue; lead whenever the token comes."""
        self._store = await open_store(self.settings.store_url)
        self._connection = await connect(self.settings, "scheduler")
        self._publisher = await Publisher.open(
            self._connection, self._shape, self.settings.publish_timeout_seconds
        )
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=1)
        name = self._shape.names.scheduler_leader
        queue = await topology.declare_queue(channel, self._shape, name)
        if queue.declaration_result.message_count == 0:  # none waiting: make one (x-max-length 1)
            await self._publish_token(datetime.now(UTC))
        await queue.consume(self._tokens.put)
        self._leading = asyncio.create_task(self._lead_forever())
        log.info("scheduler following %s with %d schedules", name, len(self.schedules))

    async def failed(self) -> None:
        """Raise what stopped the leading loop (it runs until stopped)."""
        assert self._leading is not None
        await self._leading

    async def stop(self) -> None:
        if self._leading is not None:
            self._leading.cancel()
            await asyncio.gather(self._leading, return_exceptions=True)
        if self._connection is not None:
            await self._connection.close()
        if self._store is not None:
            await self._store.close()

    async def _lead_forever(self) -> None:
        while True:
            token = await self._tokens.get()  # only the broker's active consumer gets one
            log.info("scheduler leading")
            try:
                await self._lead(token)
            except LostLeadership as exc:
                log.warning("scheduler no longer leading: %s", exc)

    async def _lead(self, token: AbstractIncomingMessage) -> None:
        now = datetime.now(UTC)
        cursor = await self._catch_up(parse_leader_token(token.body) or now, now)
        rotated = time.monotonic()
        while True:
            if token.channel.is_closed:
                raise LostLeadership("the token's channel closed")
            cursor = await self._fire_due(cursor, datetime.now(UTC))
            if time.monotonic() - rotated >= ROTATE_SECONDS:
                token, rotated = await self._rotate(token, cursor), time.monotonic()
            await asyncio.sleep(self._sleep(cursor))

    async def _catch_up(self, fired_through: datetime, now: datetime) -> datetime:
        """Fire the ticks a previous leader may not have fired; the cursor to go on from."""
        since = fired_through - LOOKBACK
        grace = now - timedelta(seconds=MISFIRE_GRACE_SECONDS)
        for schedule in self.schedules:
            last_missed = schedule.previous(grace)
            if schedule.missed == "last" and last_missed > since:
                await self.fire(schedule, last_missed)
        return await self._fire_due(max(since, grace), now)

    async def _fire_due(self, cursor: datetime, now: datetime) -> datetime:
        """Fire every tick in ``(cursor, now]``, oldest first; the new cursor (a tick that
        could not be fired stops there: it is tried again next time)."""
        due = sorted((t, s.id, s) for s in self.schedules for t in s.ticks(cursor, now))
        for tick, _, schedule in due:
            try:
                await self.fire(schedule, tick)
            except PublishError as exc:
                log.warning("schedule %s: tick %s not fired yet: %s", schedule.id, tick, exc)
                return tick - timedelta(microseconds=1)
        return now

    def _sleep(self, cursor: datetime) -> float:
        upcoming = min((s.next_after(cursor) for s in self.schedules), default=None)
        if upcoming is None:
            return MAX_SLEEP_SECONDS
        left = (upcoming - datetime.now(UTC)).total_seconds()
        return min(MAX_SLEEP_SECONDS, max(0.0, left))

    async def _rotate(
        self, token: AbstractIncomingMessage, cursor: datetime
    ) -> AbstractIncomingMessage:
        """A fresh token (publish, then ack the old one), back to us while we stay active."""
        assert self._publisher is not None
        try:
            await self._publish_token(cursor)
            await token.ack()
            async with asyncio.timeout(self.settings.publish_timeout_seconds + 5):
                return await self._tokens.get()
        except (PublishError, TimeoutError) as exc:
            raise LostLeadership(f"token rotation failed: {exc!r}") from None

    async def _publish_token(self, cursor: datetime) -> None:
        """The leader token, to its queue through the work exchange under the queue's name
        (a binding of the topology: the scheduler's user needs no default exchange)."""
        assert self._publisher is not None
        name = self._shape.names.scheduler_leader
        await self._publisher.publish(self._publisher.work_exchange, leader_token(cursor), name)

    async def fire(self, schedule: Schedule, tick: datetime) -> bool:
        """One tick's task, unless its task id is known already (fired by anyone); True if
        this call published it. ``PublishError`` (claim released) if not confirmed."""
        assert self._publisher is not None and self._store is not None
        envelope = self.tick_envelope(schedule, tick)
        change = task_change(envelope, Status.QUEUED, at=tick)
        if not await self._claim(tick_claim(change, schedule.key(tick))):
            return False
        try:
            await self._publisher.publish_task(envelope)
        except PublishError:
            await self._store.release(envelope.id)
            raise
        await self._store.apply([change])  # marks the claim published
        self.fired += 1
        log.info("schedule %s fired tick %s as task %s", schedule.id, tick, envelope.id)
        return True

    def tick_envelope(self, schedule: Schedule, tick: datetime) -> Envelope:
        """The task of ``schedule`` at ``tick``: the same id, body and owner on every replica."""
        contract = self._catalog[schedule.task_type]
        return Envelope(
            id=schedule.task_id(self.namespace, tick),
            type=contract.name,
            queue=contract.queue,
            body=self._payloads[schedule.id],
            attempt=1,
            max_attempts=contract.max_attempts,
            timeout_seconds=contract.timeout_seconds,
            created_at=tick,
            submitter=schedule.owner,
        )

    async def _claim(self, record: TaskRecord) -> bool:
        """True once this replica holds the tick; False when its task id is known already:
        fired, or claimed by a leader that stopped and may have published it (never twice).
        A fresh claim is waited on: its leader is publishing, or releasing after a failure."""
        assert self._store is not None
        while (holder := await self._store.claim(record)) is not None:
            if holder.published:
                return False
            stale = datetime.now(UTC) - timedelta(seconds=STALE_CLAIM_SECONDS)
            if holder.updated_at < stale:
                log.warning(
                    "tick task %s was claimed by a leader that stopped before recording its "
                    "publish: not fired again (if that publish was never sent, the tick is lost)",
                    holder.id,
                )
                return False
            await asyncio.sleep(0.5)
        return True
