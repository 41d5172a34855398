"""Enqueue N no-op tasks with a peer's own client API; print one JSON line.

The first ``--timed`` tasks are sent one at a time with publisher confirms,
as an application would send them, and give the client-side enqueue rate.
The rest only pre-fill the queue for the drain, so they go as fast as the
client allows: pipelined for the async clients, confirms off for the sync
ones (the messages are the same persistent messages either way).

``python enqueue.py celery|dramatiq|taskiq|faststream N --timed 2000``
"""

import argparse
import asyncio
import json
import os
import time

WINDOW = 500


def celery(n: int, timed: int) -> float:
    from celery_app import make_app, noop

    started = time.perf_counter()
    for _ in range(timed):
        noop.apply_async(("bench",))
    seconds = time.perf_counter() - started
    fast = make_app(confirm=False)
    with fast.producer_or_acquire() as producer:
        for _ in range(n - timed):
            fast.send_task("bench.noop", ("bench",), producer=producer)
    return seconds


def dramatiq(n: int, timed: int) -> float:
    from dramatiq.brokers.rabbitmq import RabbitmqBroker
    from dramatiq_app import noop

    started = time.perf_counter()
    for _ in range(timed):
        noop.send("bench")
    seconds = time.perf_counter() - started
    fast = RabbitmqBroker(url=os.environ["BENCH_URL"], confirm_delivery=False)
    for _ in range(n - timed):
        fast.enqueue(noop.message("bench"))
    fast.close()
    return seconds


async def taskiq(n: int, timed: int) -> float:
    from taskiq_app import broker, noop

    await broker.startup()
    started = time.perf_counter()
    for _ in range(timed):
        await noop.kiq("bench")
    seconds = time.perf_counter() - started
    for start in range(timed, n, WINDOW):
        await asyncio.gather(*(noop.kiq("bench") for _ in range(min(WINDOW, n - start))))
    await broker.shutdown()
    return seconds


async def faststream(n: int, timed: int) -> float:
    from faststream_app import QUEUE, broker

    async with broker:
        await broker.declare_queue(QUEUE)
        started = time.perf_counter()
        for _ in range(timed):
            await broker.publish("bench", queue=QUEUE, persist=True)
        seconds = time.perf_counter() - started
        for start in range(timed, n, WINDOW):
            count = min(WINDOW, n - start)
            await asyncio.gather(
                *(broker.publish("bench", queue=QUEUE, persist=True) for _ in range(count))
            )
    return seconds


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("peer", choices=["celery", "dramatiq", "taskiq", "faststream"])
    p.add_argument("n", type=int)
    p.add_argument("--timed", type=int, default=2000)
    args = p.parse_args()
    timed = min(args.timed, args.n)
    run = globals()[args.peer]
    seconds = (
        asyncio.run(run(args.n, timed))
        if args.peer in ("taskiq", "faststream")
        else run(args.n, timed)
    )
    print(json.dumps({"timed": timed, "seconds": seconds, "rate": timed / seconds}), flush=True)


if __name__ == "__main__":
    main()
