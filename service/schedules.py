"""Cron schedules: a task type, a payload and when, declared in the app next to its contracts.

    nightly = warren.Schedule("reports.nightly", build_report, {"kind": "daily"},
                              cron="30 2 * * *", timezone="Europe/Paris", missed="last")
    app = warren.App(contracts=[build_report], schedules=[nightly], ...)

A schedule's ticks are pure functions of its definition, so every scheduler
replica computes the same ones, and each tick has a deterministic task id
(``task_id``): whoever fires a tick, it is the same task, and the task store's
insert-first claim lets only one firing through (``warren.service.scheduler``).
Cron expressions are read by cronsim in the schedule's time zone (DST-aware:
a 02:30 job on a spring-forward day runs once, at 03:00); fixed intervals are
aligned to the Unix epoch, so every replica agrees on them without talking.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ValidationError

from warren.service.contracts import Catalog, TaskContract
from warren.service.errors import ConfigurationError

SCHEDULE_ID = re.compile(r"^[a-z][a-z0-9_.-]{0,79}$")
TICK_IDS = uuid.UUID("6f1c3a52-7d59-4c2e-9d0e-3b1f0a8c5e21")  # the uuid5 namespace of tick ids
Missed = Literal["skip", "last"]


@dataclass(frozen=True)
class Schedule:
    """A task submitted on a schedule.

    ``id``: stable name (it makes the tick's task ids: renaming a schedule starts anew).
    ``task``: the task type (a contract or its name); ``payload``: its payload.
    ``cron`` (five fields, read in ``timezone``) or ``every`` (seconds), not both.
    ``missed``: after every scheduler was down, ``"skip"`` the ticks missed, or run only the
    ``"last"`` of them. ``submitter``: the API key id whose tasks these are (who may read
    and cancel them); by default ``schedule:<id>``, which no key is: then only admin keys
    (or every caller, with authentication off) see them.
    """

    id: str
    task: TaskContract[Any] | str
    payload: Mapping[str, Any] | BaseModel = field(default_factory=dict)
    cron: str | None = None
    every: float | None = None
    timezone: str = "UTC"
    missed: Missed = "skip"
    submitter: str | None = None

    def __post_init__(self) -> None:
        if not SCHEDULE_ID.match(self.id):
            raise ConfigurationError(f"schedule id {self.id!r} is not a simple lowercase name")
        if (self.cron is None) == (self.every is None):
            raise ConfigurationError(f"schedule {self.id}: give cron or every, one of them")
        if self.every is not None and not (self.every >= 1 and math.isfinite(self.every)):
            raise ConfigurationError(f"schedule {self.id}: every is at least 1 second")
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(
                f"schedule {self.id}: no time zone {self.timezone!r}"
            ) from None
        if self.cron is not None:
            try:
                CronSim(self.cron, datetime.now(zone))
            except CronSimError as exc:
                raise ConfigurationError(f"schedule {self.id}: cron {self.cron!r}: {exc}") from None

    @property
    def task_type(self) -> str:
        return self.task if isinstance(self.task, str) else self.task.name

    @property
    def owner(self) -> str:
        return self.submitter or f"schedule:{self.id}"

    def payload_json(self, catalog: Catalog) -> bytes:
        """The payload, validated against the task type (at app load: a typo fails start-up)."""
        contract = catalog.get(self.task_type)
        if contract is None:
            raise ConfigurationError(f"schedule {self.id}: unknown task type {self.task_type!r}")
        data = self.payload.model_dump() if isinstance(self.payload, BaseModel) else self.payload
        try:
            return contract.adapter.dump_json(contract.adapter.validate_python(dict(data)))
        except ValidationError as exc:
            raise ConfigurationError(
                f"schedule {self.id}: payload: {exc.errors()[0]['msg']}"
            ) from None

    def next_after(self, moment: datetime) -> datetime:
        """The first tick strictly after ``moment`` (UTC)."""
        if self.every is not None:
            n = math.floor(moment.timestamp() / self.every) + 1
            return datetime.fromtimestamp(n * self.every, UTC)
        local = moment.astimezone(ZoneInfo(self.timezone))
        return next(CronSim(self.cron or "", local)).astimezone(UTC)

    def previous(self, moment: datetime) -> datetime:
        """The last tick at or before ``moment`` (UTC)."""
        if self.every is not None:
            n = math.floor(moment.timestamp() / self.every)
            return datetime.fromtimestamp(n * self.every, UTC)
        local = (moment + timedelta(microseconds=1)).astimezone(ZoneInfo(self.timezone))
        return next(CronSim(self.cron or "", local, reverse=True)).astimezone(UTC)

    def ticks(self, after: datetime, until: datetime) -> Iterator[datetime]:
        """The ticks in ``(after, until]``, oldest first."""
        tick = self.next_after(after)
        while tick <= until:
            yield tick
            tick = self.next_after(tick)

    def task_id(self, namespace: str, tick: datetime) -> str:
        """The task of one tick: the same for every replica that fires it."""
        name = f"{namespace}/{self.id}/{tick.astimezone(UTC).isoformat()}"
        return uuid.uuid5(TICK_IDS, name).hex

    def key(self, tick: datetime) -> str:
        """The tick's ``Idempotency-Key`` (with ``owner`` as its client)."""
        return f"{self.id}@{tick.astimezone(UTC).isoformat()}"


def check_schedules(schedules: Iterable[Schedule], catalog: Catalog) -> None:
    """Every schedule names a known task type with a valid payload, and ids are unique."""
    ids = [s.id for s in schedules]
    if len(ids) != len(set(ids)):
        raise ConfigurationError(f"app: a schedule id is used twice: {sorted(ids)}")
    for schedule in schedules:
        schedule.payload_json(catalog)
