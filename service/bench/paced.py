"""The open-loop generator: POSTs on a fixed schedule over raw HTTP/1.1 connections.

A generator on the machine it measures takes CPU from what it measures: the aiohttp
client cost ~1 ms of CPU per request (a client session's request, response and
task each, and a 1 ms polling sleep), 0.3 of a core at 300 requests/s on 2 cores
shared with the gateway, the consumers and the broker. This one writes each request
as prebuilt bytes on an ``asyncio.Protocol`` and reads the answer with a minimal
parser (status line, ``Content-Length``, body): tens of µs per request. Requests go
out when due, from one timer per due time (no polling); each connection carries one
request at a time, and a request due while every connection is busy waits for the
first to free up, its latency still counted from when it was due.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

import orjson


@dataclass
class Results:
    """What the run saw: latencies from the due time, statuses, accepted ids."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    accepted: list[tuple[str, float]] = field(default_factory=list)  # id, due (loop time)


class Client(asyncio.Protocol):
    """One keep-alive connection; one request in flight at a time."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.due = 0.0  # of the request in flight

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.set_write_buffer_limits(high=1 << 20)  # one write per request

    def send(self, request: bytes, due: float) -> None:
        assert self.transport is not None
        self.due = due
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if len(self.buffer) < end + 4 + length:
            return
        body = self.buffer[end + 4 : end + 4 + length]
        self.buffer = self.buffer[end + 4 + length :]
        self.pool.answered(self, int(head[0].split(" ", 2)[1]), body)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.pool.lost(self)


class Pool:
    """The connections, the requests waiting for one, and the results."""

    def __init__(self, address: tuple[str, int], request: bytes, keep_ids: bool) -> None:
        self.address = address
        self.request = request
        self.keep_ids = keep_ids
        self.idle: deque[Client] = deque()
        self.waiting: deque[float] = deque()  # due times of requests with no connection yet
        self.in_flight = 0
        self.results = Results()
        self.loop = asyncio.get_running_loop()
        self.done = asyncio.Event()
        self.finished_sending = False

    def due(self, when: float) -> None:
        self.in_flight += 1
        if self.idle:
            self.idle.popleft().send(self.request, when)
        else:
            self.waiting.append(when)

    def answered(self, client: Client, status: int, body: bytes) -> None:
        self._count(client.due, status, body)
        if self.waiting:
            client.send(self.request, self.waiting.popleft())
        else:
            self.idle.append(client)

    def lost(self, client: Client) -> None:
        if client in self.idle:
            self.idle.remove(client)
            return
        self._count(client.due, 0, b"")  # its request in flight failed
        if not self.done.is_set():  # the server closed it: another takes its place
            self.loop.create_task(self.connect())

    async def connect(self) -> None:
        try:
            _, client = await self.loop.create_connection(lambda: Client(self), *self.address)
        except OSError:
            while self.waiting:  # no server to send them to
                self._count(self.waiting.popleft(), 0, b"")
            return
        if self.waiting:
            client.send(self.request, self.waiting.popleft())
        else:
            self.idle.append(client)

    def _count(self, due: float, status: int, body: bytes) -> None:
        self.results.latencies.append(self.loop.time() - due)
        self.results.statuses[status] += 1
        if status == 202 and self.keep_ids:
            self.results.accepted.append((orjson.loads(body)["id"], due))
        self.in_flight -= 1
        if self.finished_sending and not self.in_flight:
            self.done.set()


def post_request(url: str, body: bytes) -> bytes:
    parts = urlsplit(url)
    head = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def paced(
    url: str, body: bytes, duration: float, connections: int, rate: float, keep_ids: bool
) -> tuple[Results, float]:
    """Send ``rate`` POSTs a second for ``duration`` seconds; the results, and the wall
    clock of loop time 0 (to turn due times into wall-clock times)."""
    parts = urlsplit(url)
    pool = Pool(
        (parts.hostname or "127.0.0.1", parts.port or 80), post_request(url, body), keep_ids
    )
    loop = pool.loop
    await asyncio.gather(*(pool.connect() for _ in range(connections)))
    total = int(rate * duration)
    start = loop.time() + 0.05
    wall0 = time.time() - loop.time()
    sent = 0

    def fire() -> None:
        nonlocal sent
        now = loop.time()
        while sent < total and (due := start + sent / rate) <= now:
            pool.due(due)
            sent += 1
        if sent < total:
            loop.call_at(start + sent / rate, fire)
        else:
            pool.finished_sending = True
            if not pool.in_flight:
                pool.done.set()

    loop.call_at(start, fire)
    await pool.done.wait()
    for client in list(pool.idle):
        if client.transport is not None:
            client.transport.close()
    return pool.results, wall0
