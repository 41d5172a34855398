"""The batch variants of ``warren bench gateway``: tasks per second through
``POST /v1/tasks/batch``, against the raw windowed publish rate of aio-pika.

* ``raw-windowed`` — the driver itself publishes prebuilt ``diag.echo`` envelopes to
  Warren's work exchange on one confirming aio-pika channel, ``--batch-size`` confirms
  in flight at a time (publish them all, await all their confirms, repeat): the broker's
  and aio-pika's ceiling for persistent, confirmed, mandatory publishes, no HTTP.
* ``warren-batch`` — ``warren gateway`` as deployed, driven closed-loop by
  ``--batch-connections`` connections each posting a batch of ``--batch-size`` tasks;
  its rate is requests/s times the batch size. Every task is validated, enveloped, published
  in one confirm window per batch and recorded, as a single submission is.

* ``warren-batch-b`` — with ``--tree-b DIR``: ``warren-batch`` run from another checkout
  (with this venv), in turn with the others: a before/after of a change in one run.

The issue's target: the batch route at least the raw rate, since the HTTP cost is
shared over the batch.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aio_pika
import orjson

from warren.service.bench.broker import echo_envelope
from warren.service.bench.common import BenchRun

TREE_B = "warren-batch-b"  # with --tree-b: the batch route of another checkout's gateway
BATCH_VARIANTS = {"raw-windowed", "warren-batch", TREE_B}


def batch_body(size: int) -> bytes:
    """``POST /v1/tasks/batch`` of ``size`` ``diag.echo`` tasks (the single bench's task)."""
    task = {"type": "diag.echo", "payload": {"message": "bench"}}
    return orjson.dumps({"tasks": [task] * size})


async def raw_windowed(
    run_: BenchRun, duration: float, warmup: float, window: int
) -> dict[str, Any]:
    """Confirmed publishes per second, ``window`` in flight at a time, for ``duration`` s."""
    connection = await aio_pika.connect(run_.settings.broker_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(run_.names.work_exchange, ensure=False)
        messages = [echo_envelope().to_message() for _ in range(window)]

        async def publish_for(seconds: float) -> tuple[int, float]:
            started = time.perf_counter()
            count = 0
            while (elapsed := time.perf_counter() - started) < seconds:
                await asyncio.gather(*(exchange.publish(m, "diag") for m in messages))
                count += len(messages)
            return count, elapsed

        await publish_for(warmup)
        count, elapsed = await publish_for(duration)
    finally:
        await connection.close()
    rate = count / elapsed if elapsed else 0.0
    return {"rps": rate, "p50_ms": 0.0, "p99_ms": 0.0, "errors": 0, "tasks": count}
