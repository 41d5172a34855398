"""An app whose handler can kill its own consumer: ``warren consume --app tests.apps.killer``.

A task whose message is ``kill`` SIGKILLs the process running it, as a segfault
in a native library or an out-of-memory kill would: the delivery is never
settled, and the broker hands it to the next consumer. Any other message is
returned. Its queue is ``test``, which every test's clean-up deletes.
"""

from __future__ import annotations

import os
import signal

import warren


class Note(warren.Payload):
    message: str


note = warren.TaskContract("test.note", "test", Note, max_attempts=1)
app = warren.App(contracts=[note], handlers=["tests.apps.killer"])


@warren.handles(note)
async def handle(payload: Note, ctx: warren.TaskContext) -> dict[str, str]:
    if payload.message == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    return {"message": payload.message}
