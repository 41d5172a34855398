"""Taskiq + taskiq-aio-pika: a classic durable queue (the library defaults to quorum; Warren's
queues are classic here), persistent messages, publisher confirms (aio-pika's channel default),
acks when the result is "saved" (after the task ran; the worker's default ``when_saved``).
"""

import os

from taskiq_aio_pika import AioPikaBroker
from taskiq_aio_pika.exchange import Exchange
from taskiq_aio_pika.queue import Queue, QueueType

QUEUE = os.environ["BENCH_QUEUE"]
broker = AioPikaBroker(
    os.environ["BENCH_URL"],
    exchange=Exchange(name=QUEUE),
    task_queues=[Queue(name=QUEUE, type=QueueType.CLASSIC, routing_key=QUEUE)],
    dead_letter_queue=Queue(name=f"{QUEUE}.dead_letter", type=QueueType.CLASSIC),
    delay_queue=Queue(name=f"{QUEUE}.delay", type=QueueType.CLASSIC),
)


@broker.task(task_name="bench.noop")
async def noop(message: str) -> str:
    return message
