"""The task API as a fault scenario's second judge: what ``GET /v1/tasks/{id}`` says.

The broker may hold every task and every event while the task API shows
``queued`` for good (a recorder that died on a closed channel): a user reads
the API, so every ``202`` must reach a final state there too, within a stated
time after the fault ends.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp

from tests.faults.ledger import Ledger, Told
from warren.service.store.model import FINAL

POLL_WAIT = 5  # seconds each long-poll waits for a final state


@dataclass(frozen=True)
class ApiVerdict:
    """Accepted tasks whose record in the task API is not final, by what it says."""

    checked: int
    stuck: dict[str, str]  # task id -> status (or the HTTP status of a failed read)
    seconds: float  # from the start of the check until the last record was final

    def check(self) -> None:
        assert not self.stuck, (
            f"{len(self.stuck)} of {self.checked} accepted tasks not final in the task API "
            f"after {self.seconds:.1f}s: {dict(list(self.stuck.items())[:10])}"
        )


async def api_converged(base_url: str, ledger: Ledger, within: float) -> ApiVerdict:
    """Long-poll every accepted task's record until all are final or ``within`` runs out."""
    accepted = [a for a in ledger.told(Told.ACCEPTED) if a.task_id is not None]
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + within
    pending = {a.task_id: "unread" for a in accepted if a.task_id}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=POLL_WAIT + 5)) as http:
        while pending and loop.time() < deadline:
            ids = list(pending)
            states = await asyncio.gather(*(_status(http, base_url, i) for i in ids))
            for task_id, status in zip(ids, states, strict=False):
                if status in FINAL:
                    del pending[task_id]
                else:
                    pending[task_id] = status
    return ApiVerdict(len(accepted), pending, loop.time() - started)


async def _status(http: aiohttp.ClientSession, base_url: str, task_id: str) -> str:
    try:
        url = f"{base_url}/v1/tasks/{task_id}"
        async with http.get(url, params={"wait": str(POLL_WAIT)}) as response:
            if response.status != 200:
                return f"HTTP {response.status}"
            status: str = (await response.json())["status"]
            return status
    except (aiohttp.ClientError, TimeoutError) as exc:
        return type(exc).__name__
