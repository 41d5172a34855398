"""Replay and discard: claim the dead letters, act, and only then delete them.

Replay, per chunk of letters claimed: publish each (confirmed) under its task
id as attempt n+1, write the records' ``queued`` change of reason
``replayed`` (the history shows the replay), then delete the letters. A letter
whose publish failed is released for a later replay; a letter already gone
(replayed by an earlier request) or claimed by a concurrent one is not
published again: asking twice never runs a task twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from warren.service.amqp import Publisher
from warren.service.dead_letters import replay_change, replay_message
from warren.service.store import TaskStore
from warren.service.store.dead import CLAIM_SECONDS, DeadLetter, DeadLetterStore, DeadQuery
from warren.service.store.model import Change

log = logging.getLogger(__name__)
CHUNK = 200
MAX_SELECTED = 100_000  # one request's filter selects at most this many
Progress = Callable[[int], None]


@dataclass(frozen=True)
class Selection:
    """Which dead letters: these ids, or whatever matches a filter."""

    ids: tuple[str, ...] = ()
    query: DeadQuery | None = None


async def selected_ids(store: DeadLetterStore, selection: Selection) -> list[str]:
    if selection.query is not None:
        return await store.select_ids(selection.query, MAX_SELECTED)
    return list(dict.fromkeys(selection.ids))


async def replay(
    store: DeadLetterStore,
    tasks: TaskStore,
    publisher: Publisher,
    selection: Selection,
    progress: Progress | None = None,
) -> int:
    """Replay the selection; returns how many were replayed (published and removed)."""
    ids = await selected_ids(store, selection)
    replayed = 0
    for start in range(0, len(ids), CHUNK):
        letters = await _claim(store, ids[start : start + CHUNK])
        replayed += await _replay_chunk(store, tasks, publisher, letters)
        if progress is not None:
            progress(replayed)
    return replayed


async def discard(
    store: DeadLetterStore, selection: Selection, progress: Progress | None = None
) -> int:
    """Delete the selection for good; returns how many were discarded."""
    ids = await selected_ids(store, selection)
    discarded = 0
    for start in range(0, len(ids), CHUNK):
        discarded += await store.remove(await _claim(store, ids[start : start + CHUNK]))
        if progress is not None:
            progress(discarded)
    return discarded


async def _claim(store: DeadLetterStore, ids: Sequence[str]) -> list[DeadLetter]:
    now = datetime.now(UTC)
    return await store.claim(ids, now, now - timedelta(seconds=CLAIM_SECONDS))


async def _replay_chunk(
    store: DeadLetterStore, tasks: TaskStore, publisher: Publisher, letters: list[DeadLetter]
) -> int:
    """Publish a claimed chunk in order, record the replays, remove what was confirmed."""
    runnable = [x for x in letters if x.body is not None]
    for skipped in (x for x in letters if x.body is None):
        log.warning(
            "dead letter %s: payload not kept (over the size bound): not replayed", skipped.id
        )
        await store.release(skipped)
    results = await asyncio.gather(
        *(publisher.publish(publisher.work_exchange, replay_message(x), x.queue) for x in runnable),
        return_exceptions=True,
    )
    confirmed = [x for x, r in zip(runnable, results, strict=True) if r is None]
    for letter, result in zip(runnable, results, strict=True):
        if result is not None:
            log.warning("replaying dead letter %s failed: %r", letter.id, result)
            await store.release(letter)
    now = datetime.now(UTC)
    changes = [c for x in confirmed if (c := replay_change(x, now)) is not None]
    await _record(tasks, changes)
    return await store.remove(confirmed)


async def _record(tasks: TaskStore, changes: list[Change]) -> None:
    """The replays in the records' history; a failure here loses only that history line."""
    try:
        await tasks.apply(changes)
    except Exception:
        log.exception("recording %d replays failed (the tasks were replayed)", len(changes))
