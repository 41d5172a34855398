"""Micro-timing of a success's settle after its event is in a batch: the general path (each
delivery's task waits for the confirm, then for the coalesced ack) against ``SuccessAcks``
(the confirm's callback acks the batch; each task wakes once, when its ack is written).

No broker: the acks go to a channel that does nothing, so only the consumer's own work is
timed. Each settle runs six coroutine frames deep, as in the consumer.

    .venv/bin/python benchmarks/settle_micro.py
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop

from warren.consumers.acks import Acks
from warren.consumers.confirm_wait import ConfirmWait
from warren.consumers.success_acks import SuccessAcks

BATCH = 30  # deliveries sharing one confirm (about what a drain's batches carry)
ROUNDS = 300
REPEATS = 7
DEPTH = 6


class NullChannel:
    is_closed = False

    async def basic_ack(self, tag: int, multiple: bool = False) -> None:
        return None


CHANNEL = NullChannel()  # one for every round, as a consumer's deliveries share theirs


class FakeDelivery:
    __slots__ = ("channel", "delivery_tag")

    def __init__(self, channel: NullChannel, tag: int) -> None:
        self.channel, self.delivery_tag = channel, tag

    async def ack(self, multiple: bool = False) -> None:
        await self.channel.basic_ack(self.delivery_tag, multiple=multiple)


class IdlePublisher:
    timeout = 30.0
    blocked = False


async def nested(depth: int, settle: Callable[[], Awaitable[None]]) -> None:
    if depth == 0:
        await settle()
    else:
        await nested(depth - 1, settle)


async def one_round(way: str, tag: int, acks: Acks, waits: ConfirmWait, held: SuccessAcks) -> float:
    """CPU seconds to settle ``BATCH`` deliveries sharing one confirm, tasks included."""
    loop = asyncio.get_running_loop()
    confirm: asyncio.Future[None] = loop.create_future()
    deliveries: list[Any] = [FakeDelivery(CHANNEL, tag + i) for i in range(BATCH)]
    for delivery in deliveries:
        acks.track(delivery)

    async def general(delivery: Any) -> None:
        await waits.first({confirm})
        await acks.ack(delivery)

    async def from_callback(delivery: Any) -> None:
        assert await held.hold(delivery, confirm, "diag.echo") is None

    settle = general if way == "general" else from_callback
    started = time.process_time()
    tasks = [loop.create_task(nested(DEPTH, functools.partial(settle, d))) for d in deliveries]
    await asyncio.sleep(0)
    confirm.set_result(None)
    await asyncio.gather(*tasks)
    return time.process_time() - started


async def main() -> None:
    acks, waits = Acks(), ConfirmWait(0.25)
    held = SuccessAcks(IdlePublisher(), acks, 0.25, lambda *_: None, lambda _: True)  # type: ignore[arg-type]
    tag = 1
    results: dict[str, list[float]] = {"general": [], "callback": []}
    for _ in range(REPEATS):
        for way, micros in results.items():
            total = 0.0
            for _ in range(ROUNDS):
                total += await one_round(way, tag, acks, waits, held)
                tag += BATCH
            micros.append(total / (ROUNDS * BATCH) * 1e6)
    for way, micros in results.items():
        print(f"{way:9s} best {min(micros):.2f} µs per delivery, median {sorted(micros)[3]:.2f}")


if __name__ == "__main__":
    uvloop.run(main())
