"""Several gateway processes on one port: ``warren gateway`` with ``http_workers`` > 1.

One gateway process is CPU-bound on its event loop (and on the GIL it shares
with the store's thread), while the broker has headroom. Each worker is a
whole ``warren gateway --worker N`` process bound with ``SO_REUSEPORT``, so
the kernel spreads new connections over them; nothing is shared in memory.

The supervisor (the process started as ``warren gateway``) only starts and
stops them, through ``warren.service.supervisor``: SIGTERM or SIGINT reaches
every worker, each drains as a single gateway does, and the supervisor exits
once all have (SIGKILL after ``STOP_GRACE_SECONDS``). **A worker that exits on
its own stops the gateway** (the others are stopped, exit code 1) rather than
being restarted: besides what the supervisor module says about restart loops,
a half-sized gateway would keep passing its readiness probe on the surviving
workers. Workers die with the supervisor (Linux ``PR_SET_PDEATHSIG``), so a
SIGKILLed supervisor leaves no orphans.

The store must be shared: SQLite's change signal is a call inside one
process, so a long-poll held by one worker would not wake for a record
another worker's recorder wrote, and a task accepted by one worker but not
written yet would be unknown to the others. PostgreSQL's ``NOTIFY`` reaches
every worker (as it reaches every replica), so several workers require it.
"""

from __future__ import annotations

import logging
import sys

from warren.service.errors import ConfigurationError
from warren.service.settings import Settings
from warren.service.store import POSTGRES_PREFIXES
from warren.service.supervisor import Supervisor

log = logging.getLogger("warren")
STOP_GRACE_SECONDS = 30.0


def check(settings: Settings) -> None:
    """Refuse, before starting anything, what several workers cannot serve correctly."""
    if settings.http_workers == 1:
        return
    if not sys.platform.startswith("linux"):
        raise ConfigurationError("WARREN_HTTP_WORKERS > 1 needs SO_REUSEPORT balancing (Linux)")
    if not settings.store_url.startswith(POSTGRES_PREFIXES):
        raise ConfigurationError(
            f"WARREN_HTTP_WORKERS={settings.http_workers} needs the PostgreSQL store "
            "(WARREN_STORE_URL=postgresql://…): with SQLite a worker would not hear the "
            "others' changes, so long-polls and event streams would miss them"
        )
    if settings.http_port == 0:
        raise ConfigurationError(
            "WARREN_HTTP_WORKERS > 1 needs a fixed http_port (WARREN_HTTP_PORT or --port): each "
            "worker binds it (port 0 would give each worker a different port)"
        )


def supervise(settings: Settings) -> int:
    """Run ``http_workers`` workers until a signal (exit 0) or until one exits (exit 1)."""
    check(settings)
    me = [sys.executable, "-m", "warren", "gateway", "--worker"]
    commands = {f"gateway worker {i}": [*me, str(i)] for i in range(settings.http_workers)}
    with Supervisor(STOP_GRACE_SECONDS, env=settings.child_environment()) as workers:
        workers.start(commands)
        log.info(
            "gateway: %d workers on port %d (pids %s)",
            len(workers.children),
            settings.http_port,
            " ".join(str(w.pid) for w in workers.children),
        )
        return workers.wait()
