"""The ceilings Warren is measured against, each run as its own process:

* ``consume``: the raw aio-pika consume ceiling — a callback consumer with
  manual acks and the same prefetch as Warren's consumers, doing nothing else.
  It prints ``{"acked", "first", "last"}`` (wall-clock times) on SIGTERM.
* ``app``: the minimal aiohttp + aio-pika gateway — read the body, validate it
  with a pydantic model compiled once, publish it persistent and mandatory with
  an awaited confirm through one shared channel, answer 202 with an id.
* ``sink``: an OTLP/HTTP receiver that accepts and drops spans, so tracing with
  export can be measured without a collector.

``python -m warren.service.bench.baselines consume|app|sink ...``. Both the app and
the consumer run on uvloop when it is installed, as Warren's processes do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractIncomingMessage
from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from warren.service import loops


class MinimalSubmission(BaseModel):
    """What the minimal app checks: the shape of a submission, nothing about task types."""

    type: str
    payload: dict[str, Any]


SUBMISSION = TypeAdapter(MinimalSubmission)


async def consume(url: str, queue: str, prefetch: int) -> None:
    """Ack everything from ``queue`` until SIGTERM, then report how many and when."""
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    stats = {"acked": 0, "first": 0.0, "last": 0.0}
    connection = await aio_pika.connect(url, client_properties={"connection_name": "bench-raw"})
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        target = await channel.get_queue(queue, ensure=False)

        async def on_message(message: AbstractIncomingMessage) -> None:
            await message.ack()
            now = time.time()
            stats["first"] = stats["first"] or now
            stats["last"] = now
            stats["acked"] += 1

        await target.consume(on_message)
        await stopping.wait()
    print(json.dumps(stats), flush=True)


def minimal_app(url: str, exchange: str, routing_key: str) -> web.Application:
    """The ceiling of the gateway: what any confirm-per-request aiohttp app must do."""
    app = web.Application()
    state: dict[str, Any] = {}

    async def broker(app: web.Application) -> Any:
        connection = await aio_pika.connect(url)
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        state["exchange"] = await channel.get_exchange(exchange, ensure=False)
        yield
        await connection.close()

    async def submit(request: web.Request) -> web.Response:
        submission = SUBMISSION.validate_python(orjson.loads(await request.read()))
        task_id = uuid.uuid4().hex
        message = aio_pika.Message(
            orjson.dumps(submission.payload),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=task_id,
            type=submission.type,
        )
        await state["exchange"].publish(message, routing_key, mandatory=True)
        body = orjson.dumps({"id": task_id, "type": submission.type, "status": "queued"})
        return web.Response(body=body, status=202, content_type="application/json")

    async def ready(request: web.Request) -> web.Response:
        return web.json_response({"status": "ready"})

    app.cleanup_ctx.append(broker)
    app.router.add_post("/v1/tasks", submit)
    app.router.add_get("/readyz", ready)
    return app


def sink_app() -> web.Application:
    """Accept OTLP/HTTP trace exports (an empty ExportTraceServiceResponse is valid)."""

    async def traces(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", traces)
    app.router.add_get("/readyz", ready)
    return app


def _serve(app: web.Application, port: int) -> None:
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=None,
        handle_signals=True,
        loop=loops.new_event_loop(),
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m warren.service.bench.baselines")
    sub = p.add_subparsers(dest="what", required=True)
    c = sub.add_parser("consume")
    c.add_argument("--url", required=True)
    c.add_argument("--queue", required=True)
    c.add_argument("--prefetch", type=int, default=16)
    a = sub.add_parser("app")
    a.add_argument("--url", required=True)
    a.add_argument("--port", type=int, required=True)
    a.add_argument("--exchange", required=True)
    a.add_argument("--routing-key", required=True)
    s = sub.add_parser("sink")
    s.add_argument("--port", type=int, required=True)
    args = p.parse_args(argv)
    if args.what == "consume":
        loops.run(consume(args.url, args.queue, args.prefetch))
    elif args.what == "app":
        _serve(minimal_app(args.url, args.exchange, args.routing_key), args.port)
    else:
        _serve(sink_app(), args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
