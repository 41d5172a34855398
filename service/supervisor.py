"""Child processes, started and stopped one way; and a process's own start-up against a signal.

Parent side. ``warren dev``, the gateway's worker supervisor, the benchmarks
and the tests' process helpers start children as ``Child`` and stop them
with ``stop_all``: SIGTERM to every child first, so their graces overlap;
then one shared grace; then SIGKILL by PID (to the child's whole process
group when it leads one), so nothing outlives its parent's intent. Each child
gets our SIGTERM at most once: a second one may arrive after the child's
event loop has closed and restored the default action, and kill a child that
was exiting cleanly.

``Supervisor`` runs a set of children as one service. A SIGTERM or SIGINT it
receives is forwarded, as one SIGTERM, to each child. **A child that exits on
its own stops the others** and makes the exit status 1 rather than being
restarted: what killed it (a setting, the broker refusing its user, a bug)
would kill a replacement too, and a restart loop inside one process hides that
from the orchestrator, whose restart policy, back-off and alerts exist for it.

Child side. ``run_until_signal`` installs the SIGTERM/SIGINT handlers before
start-up and races start-up against them: a signal while a process is still
starting (waiting for its broker) stops it at once, instead of after the wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import FrameType, TracebackType
from typing import IO, Any, TextIO

log = logging.getLogger("warren")

SIGNALS = (signal.SIGTERM, signal.SIGINT)
POLL_SECONDS = 0.1
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the supervisor dies, however it dies (Linux).

    Only for a parent that starts children from its one thread: the kernel sends the
    signal when the *thread* that forked exits, not the process.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    """One child process, signalled and killed by its own PID (its group if it leads one)."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = None,
        own_session: bool = False,
        die_with_parent: bool = False,
    ) -> None:
        self.argv = list(argv)
        self.name = name or " ".join(self.argv[1:5])
        self.own_session = own_session
        self.popen = subprocess.Popen(
            self.argv,
            env=env,
            cwd=cwd,
            stdout=stdout,
            stderr=stderr,
            start_new_session=own_session,
            # Safe: only the single-threaded supervisors ask for it (see _die_with_parent).
            preexec_fn=_die_with_parent if die_with_parent else None,  # noqa: PLW1509
        )
        self.terminated = False  # got our SIGTERM

    def __str__(self) -> str:
        return f"{self.name} (pid {self.pid})"

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def terminate(self) -> None:
        """SIGTERM, once, without waiting; nothing if it already exited."""
        if self.terminated or not self.alive():
            return
        self.terminated = True
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL and reap. A session leader's whole group is killed even after the leader
        exited: whatever it started must not outlive it."""
        if self.own_session or self.alive():
            self._signal(signal.SIGKILL)
        self.popen.wait()
        if self.popen.stdout is not None:
            self.popen.stdout.close()

    def wait(self, timeout: float | None) -> int | None:
        """The exit code, or None if it is still running after ``timeout`` seconds."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.popen.wait(timeout=timeout)
        return None

    def _signal(self, sig: signal.Signals) -> None:
        if self.own_session:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)
        else:
            self.popen.send_signal(sig)  # a no-op once reaped: never another process's PID


def stop_all(children: Sequence[Child], grace: float) -> list[int]:
    """SIGTERM to every child, wait for all within one ``grace``, SIGKILL the rest; exit codes.

    A child killed after the grace is logged: its deliveries were requeued, but an operator
    should give it a longer grace.
    """
    for child in children:
        child.terminate()
    deadline = time.monotonic() + grace
    for child in children:
        if child.wait(max(0.0, deadline - time.monotonic())) is None:
            log.error("%s did not stop within %ss: killing it", child, grace)
    for child in children:
        child.kill()
    return [child.popen.returncode for child in children]


# Bold ANSI colours, one per child in turn (a terminal only); no red, which reads as an error.
COLOURS = ("36", "33", "35", "32", "34", "94", "96", "93")


class Prefixer:
    """Lines of several processes on one stream, each prefixed by its writer's name (in its
    own colour on a terminal): what ``warren dev`` shows. One lock, whole lines, so the
    lines of two children never interleave."""

    def __init__(self, out: TextIO, width: int = 8) -> None:
        self.out = out
        self.width = width
        self.colour = out.isatty()
        self._lock = threading.Lock()
        self._colours: dict[str, str] = {}

    def say(self, name: str, line: str) -> None:
        """One line (or a block of lines), each prefixed with ``name``."""
        colour = self._colours.setdefault(name, COLOURS[len(self._colours) % len(COLOURS)])
        label = f"{name:<{self.width}} |"
        if self.colour:
            label = f"\x1b[1;{colour}m{label}\x1b[0m"
        text = "".join(f"{label} {part}\n" for part in line.rstrip("\n").split("\n"))
        with self._lock:
            self.out.write(text)
            self.out.flush()

    def follow(self, name: str, stream: IO[bytes]) -> threading.Thread:
        """Copy ``stream`` (a child's stdout and stderr) line by line until it ends."""

        def copy() -> None:
            with stream:
                for raw in iter(stream.readline, b""):
                    self.say(name, raw.decode(errors="replace"))

        thread = threading.Thread(target=copy, name=f"output of {name}", daemon=True)
        thread.start()
        return thread


class Supervisor:
    """Children run as one service until a signal (exit status 0) or one exits (status 1).

    Use as a context manager: the signal handlers are installed on entry, before the
    first child starts, so a signal during start-up still stops every child started;
    on exit, any child still alive (only if supervising raised) is killed.
    """

    def __init__(
        self,
        grace: float,
        env: Mapping[str, str] | None = None,
        output: Prefixer | None = None,
    ) -> None:
        """``output``: the children's stdout and stderr go there, line by line, prefixed
        by their name; None: they write to ours directly."""
        self.grace = grace
        self.env = env
        self.output = output
        self._readers: list[threading.Thread] = []
        self.children: list[Child] = []
        self.signalled = False
        self._previous: dict[signal.Signals, Any] = {}

    def __enter__(self) -> Supervisor:
        self._previous = {sig: signal.signal(sig, self._on_signal) for sig in SIGNALS}
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for child in self.children:
            child.kill()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self.signalled = True
        for child in self.children:
            child.terminate()

    def start(self, commands: Mapping[str, Sequence[str]]) -> None:
        """One child per named command; they die with the supervisor, however it dies."""
        for name, argv in commands.items():
            if self.signalled:
                return
            if self.output is None:
                self.children.append(Child(argv, name=name, env=self.env, die_with_parent=True))
                continue
            # A pipe of our own (not Popen's): it is read to its end, after the child is reaped.
            read, write = os.pipe()
            try:
                child = Child(
                    argv, name=name, env=self.env, die_with_parent=True, stdout=write, stderr=write
                )
            finally:
                os.close(write)
            self.children.append(child)
            self._readers.append(self.output.follow(name, os.fdopen(read, "rb")))

    def wait(self) -> int:
        """Until a signal or a child's own exit; then stop them all. The exit status.

        0 only when a signal stopped the service and every child then stopped cleanly.
        A child that dies of our SIGTERM before installing its handler was still
        starting and held no work: that is a clean stop too.
        """
        while not self.signalled and all(child.alive() for child in self.children):
            time.sleep(POLL_SECONDS)
        failed = [c for c in self.children if not c.alive() and not c.terminated]
        for child in failed:
            log.error("%s exited (%s): stopping the others", child, child.returncode)
        codes = stop_all(self.children, self.grace)
        for reader in self._readers:  # the children's last lines, before ours
            reader.join(timeout=1)
        clean = all(code in (0, -signal.SIGTERM) for code in codes)
        return 0 if self.signalled and not failed and clean else 1


async def run_until_signal(
    start: Awaitable[None], what: str, failure: Callable[[], Awaitable[None]] | None = None
) -> None:
    """Run ``start``, then wait for SIGTERM or SIGINT; the caller stops what was started.

    A signal before ``start`` finished cancels it and returns at once. ``failure``, once
    started, may raise what makes the process unable to go on (a broker refusing its user,
    found in the background): it ends the wait with that error.
    """
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in SIGNALS:
        loop.add_signal_handler(sig, stopping.set)
    signalled = asyncio.ensure_future(stopping.wait())
    starting = asyncio.ensure_future(start)
    watched: asyncio.Future[None] | None = None
    try:
        await asyncio.wait((starting, signalled), return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            log.info("signal received during start-up: not starting %s", what)
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
            return
        starting.result()  # a failed start-up raises here
        watched = asyncio.ensure_future(failure()) if failure else None
        ends = [f for f in (signalled, watched) if f is not None]
        await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
        if watched is not None and watched.done():
            watched.result()
        log.info("signal received: stopping %s", what)
    finally:
        for future in (signalled, watched):
            if future is not None:
                future.cancel()
