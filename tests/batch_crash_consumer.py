"""A real Warren consumer process that SIGKILLs itself while its first event batch is in flight.

Run as ``python -m tests.batch_crash_consumer published|confirmed`` with
``WARREN_*`` settings in the environment, like ``warren consume --queue diag``:

* ``published``: killed as soon as the first batch's publish is under way,
  before any confirm can have come back: the batch may or may not be on the
  broker;
* ``confirmed``: killed the moment the first batch's confirm arrives, before
  the deliveries it settles are acked: the events are on the broker, the tasks
  are not acked.

Only a real ``SIGKILL`` shows what the broker then does with the deliveries the
process held (it redelivers them) and what the recorder makes of events that
come twice. Everything else is Warren's real consumer.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from warren.consumers.handlers import BUILTIN_REGISTRY
from warren.consumers.runner import run
from warren.service.amqp import Publisher
from warren.service.settings import Settings
from warren.service.tasks import BUILTIN_CATALOG
from warren.service.wire import EventMessage


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def crash_on_first_batch(when: str) -> None:
    """Patch the event publish: the first one kills the process, ``when`` says at which point."""
    original = Publisher.send_event

    def send_event(self: Publisher, event: EventMessage) -> asyncio.Future[None]:
        sent = original(self, event)
        if when == "confirmed":
            sent.add_done_callback(lambda _: die())  # before anyone awaiting it runs
        else:
            asyncio.get_running_loop().call_soon(die)  # the publish has only just started
        return sent

    Publisher.send_event = send_event  # type: ignore[method-assign]


def main(argv: list[str]) -> None:
    crash_on_first_batch(argv[0])
    asyncio.run(run(Settings(), BUILTIN_CATALOG, BUILTIN_REGISTRY, "diag", 4))


if __name__ == "__main__":
    main(sys.argv[1:])
