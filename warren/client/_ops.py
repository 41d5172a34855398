"""The operations calls: queue states, dead letters, replay and discard.

Replay and discard are safe to send again (a letter already replayed or discarded is
gone, so a repeat moves nothing), so they are repeatable like any GET.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from pydantic import BaseModel, ConfigDict

from warren.client._core import Call, checked

__all__ = ["DeadLetter", "DeadLetterPage", "QueueState"]


class QueueState(BaseModel):
    """One queue (``GET /v1/queues``): broker depths, running tasks, dead letters, rates."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    ready: int | None
    unacked: int
    consumers: int | None
    retrying: int
    retry_tiers: dict[str, int | None]
    scheduled: int | None
    dead_letters: int
    rates: dict[str, float]


class DeadLetter(BaseModel):
    """A dead letter; ``payload`` and ``headers`` only when read alone (``dead_letter``)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    queue: str
    type: str | None
    reason: str | None
    error_type: str | None
    error: str | None
    attempts: int | None
    dead_at: datetime
    payload_size: int
    submitter: str | None
    payload: Any = None
    payload_kept: bool | None = None
    headers: dict[str, Any] | None = None


class DeadLetterPage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    items: list[DeadLetter]
    next_cursor: str | None


class _Queues(BaseModel):
    queues: list[QueueState]


def queues_call() -> Call[list[QueueState]]:
    def read(response: httpx.Response) -> list[QueueState]:
        return _Queues.model_validate_json(checked(response).content).queues

    return Call("GET", "/v1/queues", read)


def dead_page_call(
    filters: dict[str, str | datetime | None], limit: int | None, cursor: str | None
) -> Call[DeadLetterPage]:
    params = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in filters.items() if v}
    if limit is not None:
        params["limit"] = str(limit)
    if cursor:
        params["cursor"] = cursor

    def read(response: httpx.Response) -> DeadLetterPage:
        return DeadLetterPage.model_validate_json(checked(response).content)

    return Call("GET", "/v1/dead-letters", read, params=params)


def dead_letter_call(letter_id: str) -> Call[DeadLetter]:
    def read(response: httpx.Response) -> DeadLetter:
        return DeadLetter.model_validate_json(checked(response).content)

    return Call("GET", f"/v1/dead-letters/{quote(letter_id, safe='')}", read)


def act_call(
    action: str, ids: Sequence[str] | None, filters: dict[str, str | datetime | None] | None
) -> Call[int]:
    """``POST /v1/dead-letters/{replay|discard}`` of ids or of a filter; how many moved."""
    if (ids is None) == (filters is None):
        raise ValueError("give ids or a filter")
    if ids is not None:
        body: dict[str, Any] = {"ids": list(ids)}
    else:
        body = {"filter": {k: v for k, v in (filters or {}).items() if v}}
    key = "replayed" if action == "replay" else "discarded"

    def read(response: httpx.Response) -> int:
        return int(orjson.loads(checked(response).content)[key])

    return Call(
        "POST",
        f"/v1/dead-letters/{action}",
        read,
        body=orjson.dumps(body, default=str),
        headers={"Content-Type": "application/json"},
    )
