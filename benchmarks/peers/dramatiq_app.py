"""Dramatiq: acks after the actor ran (its only mode), persistent messages, confirms on enqueue.

Processes and threads are chosen on the worker's command line (2 x 8).
Dramatiq's default middleware (retries, time limit, age limit, …) stays on, as
a user would run it.
"""

import os

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

QUEUE = os.environ["BENCH_QUEUE"]
broker = RabbitmqBroker(url=os.environ["BENCH_URL"], confirm_delivery=True)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, actor_name="bench_noop")
def noop(message: str) -> str:
    return message
