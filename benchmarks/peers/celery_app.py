"""Celery, configured for the same guarantees as Warren where Celery has them.

acks_late (ack after the task ran), persistent messages (Celery's default
delivery_mode 2), publisher confirms on enqueue (``confirm_publish``), no
result backend (Warren's no-op tasks store nothing either), default prefetch
multiplier (4). Pool and concurrency are chosen on the worker's command line.
"""

import os

from celery import Celery

QUEUE = os.environ["BENCH_QUEUE"]


def make_app(confirm: bool = True) -> Celery:
    """The app; ``confirm=False`` only for pre-filling the queue fast (same messages)."""
    app = Celery("bench", broker=os.environ["BENCH_URL"].replace("amqp://", "pyamqp://"))
    app.conf.update(CONFIG, broker_transport_options={"confirm_publish": confirm})
    return app


CONFIG = dict(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    task_ignore_result=True,
    task_default_queue=QUEUE,
    task_default_exchange=QUEUE,
    task_default_routing_key=QUEUE,
    task_default_delivery_mode="persistent",
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
)
app = make_app()


@app.task(name="bench.noop")
def noop(message: str) -> str:
    return message
