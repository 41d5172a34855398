"""Several gateway processes on one port: ``warren gateway`` with ``http_workers`` > 1.

One gateway process is CPU-bound on its event loop (and on the GIL it shares
with the store's thread), while the broker has headroom. Each worker is a
whole ``warren gateway --worker N`` process bound with ``SO_REUSEPORT``, so
the kernel spreads new connections over them; nothing is shared in memory.

The supervisor (the process started as ``warren gateway``) only starts and
stops them. SIGTERM or SIGINT is forwarded to every worker, each drains as a
single gateway does, and the supervisor exits once all have (SIGKILL after
``STOP_GRACE_SECONDS``). **A worker that exits on its own stops the gateway**
(the others are stopped, exit code 1) rather than being restarted: what kills
one worker (a bad setting, a broker refusing its credentials, a bug) usually
kills its replacement too, and a restart loop inside a container hides that
from the orchestrator, whose restart policy, back-off and alerts exist for it;
a half-sized gateway would also keep passing its readiness probe on the
surviving workers. Workers are told to die with the supervisor (Linux
``PR_SET_PDEATHSIG``), so a SIGKILLed supervisor leaves no orphans.

The store must be shared: SQLite's change signal is a call inside one
process, so a long-poll held by one worker would not wake for a record
another worker's recorder wrote, and a task accepted by one worker but not
written yet would be unknown to the others. PostgreSQL's ``NOTIFY`` reaches
every worker (as it reaches every replica), so several workers require it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import signal
import sys
from collections.abc import Sequence

from warren.service.errors import ConfigurationError
from warren.service.settings import Settings
from warren.service.store import POSTGRES_PREFIXES

log = logging.getLogger("warren")
STOP_GRACE_SECONDS = 30.0
_PR_SET_PDEATHSIG = 1


def check(settings: Settings) -> None:
    """Refuse, before starting anything, what several workers cannot serve correctly."""
    if settings.http_workers == 1:
        return
    if not sys.platform.startswith("linux"):
        raise ConfigurationError("http_workers > 1 needs SO_REUSEPORT balancing (Linux)")
    if not settings.store_url.startswith(POSTGRES_PREFIXES):
        raise ConfigurationError(
            f"http_workers={settings.http_workers} needs the PostgreSQL store "
            "(WARREN_STORE_URL=postgresql://…): with SQLite a worker would not hear the "
            "others' changes, so long-polls and event streams would miss them"
        )
    if settings.http_port == 0:
        raise ConfigurationError(
            "http_workers > 1 needs a fixed http_port: each worker binds it (port 0 would "
            "give each worker a different port)"
        )


def _die_with_parent() -> None:
    """In the worker, before exec: SIGTERM when the supervisor dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


async def _start(settings: Settings, index: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "warren",
        "gateway",
        "--worker",
        str(index),
        env=settings.child_environment(),
        preexec_fn=_die_with_parent,  # safe: the supervisor runs no threads
    )


async def supervise(settings: Settings) -> int:
    """Run ``http_workers`` workers until a signal (exit 0) or until one exits (exit 1)."""
    check(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    workers = [await _start(settings, i) for i in range(settings.http_workers)]
    log.info(
        "gateway: %d workers on port %d (pids %s)",
        len(workers),
        settings.http_port,
        " ".join(str(w.pid) for w in workers),
    )
    exits = [asyncio.ensure_future(w.wait()) for w in workers]
    signalled = asyncio.ensure_future(stopping.wait())
    await asyncio.wait([*exits, signalled], return_when=asyncio.FIRST_COMPLETED)
    failed = [w for w in workers if w.returncode is not None]
    for worker in failed:
        log.error("gateway worker %d exited (%s): stopping all", worker.pid, worker.returncode)
    signalled.cancel()
    await _stop(workers, exits)
    return 1 if failed else max((w.returncode or 0 for w in workers), default=0)


async def _stop(
    workers: list[asyncio.subprocess.Process], exits: Sequence[asyncio.Future[int]]
) -> None:
    for worker in workers:
        if worker.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                worker.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(STOP_GRACE_SECONDS):
            await asyncio.gather(*exits)
    except TimeoutError:
        for worker in workers:
            if worker.returncode is None:
                log.error("gateway worker %d did not stop: killing it", worker.pid)
                with contextlib.suppress(ProcessLookupError):
                    worker.kill()
        await asyncio.gather(*exits)
