"""``warren dev``: the gateway and one consumer per known queue as child processes.

For a laptop or a machine that already runs RabbitMQ. Children are real
``warren`` processes, so what runs here is what a deployment runs.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

from warren.service.apps import App
from warren.service.http.auth import DEV_KEY, DEV_TOKEN
from warren.service.keys_cli import entry
from warren.service.settings import Settings

log = logging.getLogger("warren.dev")


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
    children = _Children(stop_timeout=settings.consumer_grace_seconds + 10)
    # Handlers first: a signal while children are being started must still stop them all.
    previous = {
        sig: signal.signal(sig, children.on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        return children.supervise(commands)
    finally:
        children.kill_leftovers()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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


class _Children:
    """The child processes of ``warren dev``; each gets SIGTERM at most once."""

    def __init__(self, stop_timeout: float) -> None:
        self.stop_timeout = stop_timeout
        self.processes: list[subprocess.Popen[bytes]] = []
        self.signalled = False
        # Signalled once each: a second SIGTERM may arrive after a child's event loop has
        # closed and restored the default action, and kill a child that stopped cleanly.
        self._asked: set[int] = set()

    def on_signal(self, signum: int, _frame: object) -> None:
        self.signalled = True
        self.stop()

    def stop(self) -> None:
        for child in self.processes:
            if child.poll() is None and child.pid not in self._asked:
                self._asked.add(child.pid)
                child.send_signal(signal.SIGTERM)

    def supervise(self, commands: list[list[str]]) -> int:
        for command in commands:
            if self.signalled:
                break
            self.processes.append(subprocess.Popen(command))
        while not self.signalled and all(c.poll() is None for c in self.processes):
            time.sleep(0.2)
        failed = [c for c in self.processes if c.poll() is not None and c.pid not in self._asked]
        for child in failed:
            log.error("%s exited with %s; stopping the others", _describe(child), child.returncode)
        self.stop()
        codes = [self._wait_or_kill(c) for c in self.processes]
        # A child that got SIGTERM before installing its handler was still starting and held
        # no work: dying of that signal is a clean stop too.
        clean = all(code in (0, -signal.SIGTERM) for code in codes)
        return 0 if self.signalled and not failed and clean else 1

    def _wait_or_kill(self, child: subprocess.Popen[bytes]) -> int:
        try:
            return child.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            log.error("%s did not stop within %ss; killing it", _describe(child), self.stop_timeout)
            child.kill()
            return child.wait()

    def kill_leftovers(self) -> None:
        """Only reached with live children if supervising raised: never leave orphans."""
        for child in self.processes:
            if child.poll() is None:
                child.kill()
                child.wait()


def _describe(child: subprocess.Popen[bytes]) -> str:
    args = child.args
    return " ".join(map(str, args[-3:])) if isinstance(args, list) else str(args)
