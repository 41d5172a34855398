"""Child processes of a benchmark (and of the tests): real ``warren`` commands, baselines and
load generators.

Every child runs in its own process group with its output in a log file, and
is ended by its own id (``warren.service.supervisor``: SIGTERM, then SIGKILL
to its group after a grace): a benchmark never leaves anything running, and
never touches a process it did not start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from warren.service.settings import Settings
from warren.service.supervisor import Child
from warren.service.supervisor import stop_all as stop_children

REPO = Path(__file__).resolve().parents[2]


def warren_env(settings: Settings, **overrides: Any) -> dict[str, str]:
    return settings.child_environment(**overrides)


class Proc(Child):
    """One child process, its own session (so its children are ended with it)."""

    def __init__(
        self,
        argv: list[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        *,
        pipe: bool,
        cwd: Path = REPO,
    ) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            super().__init__(
                argv,
                env=env,
                cwd=cwd,
                stdout=subprocess.PIPE if pipe else log,
                stderr=log,
                own_session=True,
            )

    @classmethod
    def module(
        cls, module: str, args: list[str], log_path: Path, env: dict[str, str] | None = None
    ) -> Proc:
        """``python -m module args``; its stdout is kept for the JSON it reports."""
        return cls([sys.executable, "-m", module, *args], log_path, env, pipe=True)

    @classmethod
    def warren(
        cls, args: list[str], log_path: Path, env: dict[str, str], tree: Path | None = None
    ) -> Proc:
        """A real ``warren`` process (``python -m warren``), as a deployment runs it.

        ``tree``: another checkout of Warren to run instead of this one (an A/B of a
        change in one benchmark run), with this interpreter and its packages.
        """
        if tree is None:
            return cls([sys.executable, "-m", "warren", *args], log_path, env, pipe=False)
        env = env | {"PYTHONPATH": str(tree)}  # its ``warren`` before the installed one
        argv = [sys.executable, "-m", "warren", *args]
        return cls(argv, log_path, env, pipe=False, cwd=tree)

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def kill_group(self) -> None:
        """SIGKILL to its whole process group (by PID), and reap it."""
        self.kill()

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM, wait up to ``grace``, then SIGKILL the whole group; the exit code."""
        stop_all([self], grace)
        return self.popen.returncode

    def report(self, timeout: float) -> dict[str, Any]:
        """Wait for a child that prints one JSON object on stdout and exits, and parse it."""
        try:
            out, _ = self.popen.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(grace=1)
            raise RuntimeError(
                f"{self.argv[:4]} did not finish in {timeout}s:\n{self.tail()}"
            ) from None
        text = out.decode(errors="replace")
        start = text.rfind("\n{")  # the last JSON object: one line, or indented over many
        if self.popen.returncode != 0 or "{" not in text:
            raise RuntimeError(f"{self.argv[:4]} failed ({self.popen.returncode}):\n{self.tail()}")
        result: dict[str, Any] = json.loads(text[start + 1 :] if start >= 0 else text)
        return result

    async def report_async(self, timeout: float) -> dict[str, Any]:
        """``report`` without blocking the event loop (the parent keeps polling the broker)."""
        return await asyncio.to_thread(self.report, timeout)


def free_port() -> int:
    """A port free right now (the child binds it moments later; good enough on loopback)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_http(url: str, procs: list[Proc], within: float = 60.0) -> None:
    """Poll ``url`` until it answers 200; fail early (with the log) if a process died."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            for proc in procs:
                if not proc.alive():
                    raise RuntimeError(f"{proc.argv[:5]} exited early:\n{proc.tail()}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} not ready within {within}s:\n{procs[0].tail() if procs else ''}")


def stop_all(procs: list[Proc], grace: float = 10.0) -> None:
    """Stop children in parallel: SIGTERM to all first, so their graces overlap."""
    stop_children(procs, grace)
