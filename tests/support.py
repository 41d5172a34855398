"""Test helpers that talk to the real broker: event capture, queue inspection, a TCP proxy."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import aio_pika
import asyncpg
import orjson
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from warren.service.store.model import new_task_id
from warren.service.topology import Names
from warren.service.wire import Envelope, event_objects


class Events:
    """Every lifecycle event published under a namespace, in arrival order.

    Consumers publish events in batches: each message is read with the one
    decoding helper, which gives the events of a batch and of a single-event
    message alike.
    """

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.messages = 0
        self._changed = asyncio.Condition()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        async with self._changed:
            self.items.extend(event_objects(message.body, message.headers))
            self.messages += 1
            self._changed.notify_all()

    async def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 20
    ) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: predicate(self.items))
        return self.items

    def of(self, task_id: str, status: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.items if e["task_id"] == task_id and status in (None, e["status"])]

    async def final(self, task_id: str, timeout: float = 20) -> dict[str, Any]:
        """The first final event (succeeded or dead) of a task."""
        final = ("succeeded", "dead")
        await self.wait_for(lambda _: any(e["status"] in final for e in self.of(task_id)), timeout)
        return next(e for e in self.of(task_id) if e["status"] in final)


async def capture_events(channel: AbstractChannel, names: Names) -> Events:
    events = Events()
    exchange = await channel.declare_exchange(
        names.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchange, "#")
    await queue.consume(events.on_message, no_ack=True)
    return events


async def queue_counts(channel: AbstractChannel, queue: str) -> tuple[int, int]:
    """Ready messages and consumers of a queue, asked of the broker now.

    Goes below aio-pika's robust channel, whose passive declare returns a cached
    queue object with the counts of its first declaration.
    """
    ok = await (await channel.get_underlay_channel()).queue_declare(queue, passive=True)
    assert ok.message_count is not None and ok.consumer_count is not None
    return ok.message_count, ok.consumer_count


async def message_count(channel: AbstractChannel, queue: str) -> int:
    return (await queue_counts(channel, queue))[0]


async def drain(
    queue: AbstractQueue, expected: int, timeout: float = 10
) -> list[AbstractIncomingMessage]:
    """Take (and ack) ``expected`` messages from a queue, waiting for them to arrive."""
    taken: list[AbstractIncomingMessage] = []
    async with asyncio.timeout(timeout):
        while len(taken) < expected:
            message = await queue.get(fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            await message.ack()
            taken.append(message)
    return taken


class TcpProxy:
    """A tiny TCP proxy: tests cut the broker connection or slow it down, no root needed.

    Toxiproxy is not available here and ``tc netem`` is not in this kernel, so the
    network faults are made in user space: ``cut`` drops every proxied connection and
    refuses new ones until ``restore``; ``latency`` delays every chunk in both
    directions (in order, so the stream stays intact).
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.latency = 0.0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await src.read(65536):
                if self.latency:
                    await asyncio.sleep(self.latency)
                dst.write(data)
                await dst.drain()
        dst.close()

    async def cut(self) -> None:
        """Stop accepting and drop every proxied connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def restore(self) -> None:
        await self.start()


POSTGRES_URL = os.environ.get(
    "WARREN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@contextlib.asynccontextmanager
async def postgres_schema() -> AsyncIterator[str]:
    """A store URL on a schema of its own on the test PostgreSQL, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        separator = "&" if "?" in POSTGRES_URL else "?"
        yield f"{POSTGRES_URL}{separator}search_path={schema}"
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


def first_attempt(type_: str, payload: dict[str, Any], queue: str = "diag") -> Envelope:
    """A task as the gateway would publish it (60 s timeout, 5 attempts), for tests that
    publish straight to a work queue."""
    return Envelope(
        id=new_task_id(),
        type=type_,
        queue=queue,
        body=orjson.dumps(payload),
        attempt=1,
        max_attempts=5,
        timeout_seconds=60,
        created_at=datetime.now(UTC),
    )
