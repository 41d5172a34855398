"""FastStream (RabbitMQ): ack after the handler ran (``AckPolicy.ACK``), a durable queue,
persistent publishes with confirms (its channels confirm by default). Processes are chosen on
the command line (``faststream run … --workers 2``).

Prefetch is set to 16 per channel, as Warren's: FastStream's default is no limit, which lets
the first process to start take the whole queue into its memory (and the other none of it).
"""

import os

from faststream import AckPolicy, FastStream
from faststream.rabbit import Channel, RabbitBroker, RabbitQueue

QUEUE = RabbitQueue(os.environ["BENCH_QUEUE"], durable=True)
broker = RabbitBroker(
    os.environ["BENCH_URL"], log_level=30, default_channel=Channel(prefetch_count=16)
)
app = FastStream(broker)


@broker.subscriber(QUEUE, ack_policy=AckPolicy.ACK)
async def noop(message: str) -> str:
    return message
