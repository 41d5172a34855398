"""A Warren consumer process whose ``diag.echo`` records its side effect, and may crash.

Run as ``python -m tests.faults.crash_consumer SIDE_EFFECTS_FILE [--crash-before-ack]``
with ``WARREN_*`` settings in the environment, like ``warren consume --queue diag``.

Why a process of its own: scenario 4 needs a crash at one exact point — after
the handler's side effect and after its ``succeeded`` event is confirmed, but
before the ack — and only a real ``SIGKILL`` of the process shows what the
broker and the next consumer then do. Everything else is Warren's real
consumer (``warren.consumers.runner.run``). The side effect is a line appended (and
fsynced) to a file, recording whether the handler was told the delivery was
a redelivery. With ``--crash-before-ack`` the process kills itself at the ack of
any first delivery (not redelivered) whose message starts with ``crash``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from pathlib import Path

from warren.consumers.acks import Acks
from warren.consumers.context import TaskContext
from warren.consumers.handlers import BUILTIN_REGISTRY as REGISTRY
from warren.consumers.inbound import Delivery
from warren.consumers.registry import Handler, Registry, handles
from warren.consumers.runner import run
from warren.service.settings import Settings
from warren.service.tasks import BUILTIN_CATALOG as CATALOG
from warren.service.tasks import EchoPayload, diag_echo
from warren.service.wire.copies import unsettled

CRASH_MARKER = "crash"


def recording_echo(side_effects: Path) -> Handler[EchoPayload]:
    @handles(diag_echo)
    async def echo(payload: EchoPayload, ctx: TaskContext) -> dict[str, str]:
        record = {
            "task_id": ctx.task_id,
            "message": payload.message,
            "attempt": ctx.attempt,
            "redelivered": ctx.redelivered,
            "pid": os.getpid(),
        }
        with side_effects.open("a") as out:
            out.write(json.dumps(record) + "\n")
            out.flush()
            os.fsync(out.fileno())
        return {"message": payload.message}

    return echo


def crash_at_first_ack() -> None:
    """Patch the ack so a first delivery of a ``crash…`` task SIGKILLs this process instead.

    The patch is on the consumer's ack *request* (``Acks.ack``), not on the frame:
    acks are sent in batches, so a crash task's ack may go out inside another
    delivery's multiple ack.
    """
    original = Acks.ack

    async def ack(self: Acks, delivery: Delivery) -> None:
        first = not delivery.redelivered and not unsettled(delivery)  # not a counted copy
        if first and json.loads(delivery.body).get("message", "").startswith(CRASH_MARKER):
            os.kill(os.getpid(), signal.SIGKILL)
        await original(self, delivery)

    Acks.ack = ack  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("side_effects", type=Path)
    parser.add_argument("--crash-before-ack", action="store_true")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    if args.crash_before_ack:
        crash_at_first_ack()
    others = tuple(h for h in REGISTRY.handlers if h.contract.name != diag_echo.name)
    registry = Registry((*others, recording_echo(args.side_effects)))
    asyncio.run(run(Settings(), CATALOG, registry, "diag", args.concurrency))


if __name__ == "__main__":
    main()
