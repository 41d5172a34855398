"""``warren dev``: the gateway and one consumer per known queue as child processes.

For a laptop or a machine that already runs RabbitMQ. Children are real
``warren`` processes, so what runs here is what a deployment runs; they are
started and stopped by ``warren.service.supervisor``.
"""

from __future__ import annotations

import json
import os
import sys

from warren.service.apps import App
from warren.service.http.auth import DEV_KEY, DEV_TOKEN
from warren.service.keys_cli import entry
from warren.service.settings import Settings
from warren.service.supervisor import Supervisor


def run_dev(settings: Settings, app: App, port: int | None) -> int:
    """Gateway and one consumer per known queue, as child processes; Ctrl-C stops them all.

    Exits 0 only when stopped by a signal and every child then stopped cleanly;
    a child that exits on its own (e.g. a consumer with a missing handler) stops
    the others and makes the exit status 1. Children that outlive their grace
    are killed, so the supervisor itself never hangs. The children serve ``app``
    (``settings.app``, handed on in ``WARREN_APP``).
    """
    _use_dev_key(settings)
    if settings.app:
        os.environ["WARREN_APP"] = settings.app  # inherited by the children
    me = [sys.executable, "-m", "warren"]
    commands = [[*me, "gateway", *(["--port", str(port)] if port else [])]]
    # One machine, several consumers: each gets its own health port, counting up.
    commands += [
        [
            *me,
            "consume",
            "--queue",
            q,
            "--health-port",
            str(settings.health_port + i if settings.health_port else 0),
        ]
        for i, q in enumerate(app.catalog.queues)
    ]
    with Supervisor(grace=settings.consumer_grace_seconds + 10) as children:
        children.start({_name(command): command for command in commands})
        return children.wait()


def _name(command: list[str]) -> str:
    """``gateway``, ``consume --queue diag``: how the supervisor's log names a child."""
    return " ".join(command[3 : 6 if "consume" in command else 4])


def _use_dev_key(settings: Settings) -> None:
    """With authentication on and no key set the gateway would refuse to start: on a laptop,
    the children get the fixed dev-only key, whose token the README's curl sends."""
    configured = settings.api_keys.strip() not in ("", "[]") or settings.api_keys_file
    if settings.auth_disabled or configured:
        return
    os.environ["WARREN_API_KEYS"] = json.dumps([entry(DEV_KEY)])  # inherited by the children
    print(
        f"warren dev: no API key configured, so the dev-only key is on (never use it in a "
        f"deployment): -H 'Authorization: Bearer {DEV_TOKEN}'",
        flush=True,
    )
