"""Real ``warren`` processes for tests: environment from Settings, start, wait, kill by group."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from warren.service.bench.procs import REPO, Proc, free_port
from warren.service.settings import Settings

__all__ = ["REPO", "Child", "free_port", "ready", "settings_env", "until"]


def settings_env(settings: Settings, **overrides: Any) -> dict[str, str]:
    """A child's environment: ``settings`` with ``overrides`` of its fields, and variables
    given in capitals (``DEMO_SMTP_PORT="25"``, an app's own settings) set as they are."""
    raw = {k: str(v) for k, v in overrides.items() if k.isupper()}
    fields = {k: v for k, v in overrides.items() if not k.isupper()}
    if unknown := set(fields) - set(Settings.model_fields):
        raise TypeError(f"not Warren settings: {sorted(unknown)}")
    return settings.child_environment(**fields) | raw


class Child(Proc):
    """A ``python -m warren ...`` process, its own session, its output in a file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        # O_APPEND (the log is opened "ab"): `dev` and its children share it.
        super().__init__([sys.executable, "-m", "warren", *args], log_path, env, pipe=False)

    @property
    def worker(self) -> str:
        """The ``worker`` its events carry (``Settings.worker_name``: host:pid)."""
        return f"{socket.gethostname()}:{self.pid}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def send(self, sig: signal.Signals) -> None:
        self.popen.send_signal(sig)

    async def exit_code(self, within: float) -> int:
        await until(lambda: self.popen.poll() is not None, within, f"{self.pid} to exit", self)
        return self.popen.returncode

    async def wait_log(self, text: str, count: int = 1, within: float = 20) -> None:
        def logged() -> bool:
            assert self.popen.poll() is None, f"exited early:\n{self.log()[-4000:]}"
            return self.log().count(text) >= count

        await until(logged, within, f"{text!r} logged {count} times", self)

    def group_alive(self) -> bool:
        """Whether any process of its group (it, or a child it started) still exists."""
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        return True


async def until(
    predicate: Callable[[], bool], within: float, what: str, proc: Child | None = None
) -> None:
    """Poll ``predicate`` until true; past ``within`` seconds fail, showing the child's log."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            log = f":\n{proc.log()[-4000:]}" if proc else ""
            raise AssertionError(f"waited {within}s for {what}{log}")
        await asyncio.sleep(0.05)


async def ready(http: aiohttp.ClientSession, url: str, proc: Child, within: float) -> None:
    """Poll ``url`` until it answers 200."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        assert proc.popen.poll() is None, f"exited early:\n{proc.log()[-4000:]}"
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} not ready within {within}s:\n{proc.log()[-4000:]}")
