"""A batch of submissions as one ``Call``: ``POST /v1/tasks/batch``.

Each submission is checked locally first (given its contract, as ``submit`` does);
one the contract refuses gets its ``ValidationFailed`` in its place and is not
sent. The gateway answers each task sent, in order: accepted (``TaskAccepted``) or
refused, as the typed ``ProblemError`` it would have raised alone (not raised: a
batch is many outcomes). A batch is repeatable after a broken connection only
when every task sent carries an idempotency key.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
import orjson
from opentelemetry import propagate

from warren.client._core import Call, checked, problem_of
from warren.client._submission import Submission
from warren.client.errors import ProblemError
from warren.client.models import TaskAccepted

BatchItem = TaskAccepted | ProblemError
"""One task's outcome in a batch: accepted, or the problem it would have raised alone."""


@dataclass
class BatchPlan:
    """What ``submit_batch`` does: the outcomes known locally, and the call for the rest
    (None when every submission was refused locally)."""

    outcomes: list[BatchItem | None] = field(default_factory=list)
    call: Call[list[BatchItem]] | None = None


def plan_batch(submissions: Iterable[Submission]) -> BatchPlan:
    """The batch's request, its tasks checked locally first."""
    plan = BatchPlan()
    bodies: list[dict[str, Any]] = []
    keys: list[str | None] = []
    for submission in submissions:
        try:
            body, key = submission.body()
        except ProblemError as refused:
            plan.outcomes.append(refused)
            continue
        plan.outcomes.append(None)
        bodies.append({**body, "idempotency_key": key} if key else body)
        keys.append(key)
    if bodies:
        headers = {"Content-Type": "application/json"}
        propagate.inject(headers)
        read = partial(_outcomes, local=list(plan.outcomes), keys=keys)
        data = orjson.dumps({"tasks": bodies})
        repeatable = all(keys)
        plan.call = Call(
            "POST", "/v1/tasks/batch", read, body=data, headers=headers, repeatable=repeatable
        )
    return plan


def _outcomes(
    response: httpx.Response, local: list[BatchItem | None], keys: list[str | None]
) -> list[BatchItem]:
    """The gateway's answers put in the places of the tasks sent."""
    answers = iter(orjson.loads(checked(response).content)["items"])
    sent = iter(keys)
    return [item if item is not None else _item(next(answers), next(sent)) for item in local]


def _item(answer: dict[str, Any], key: str | None) -> BatchItem:
    problem = answer.get("problem")
    if isinstance(problem, dict):
        after = problem.get("retry_after")
        status = int(problem.get("status") or 500)
        return problem_of(status, problem, None, float(after) if after is not None else None)
    return TaskAccepted.model_validate({**answer, "idempotency_key": key})
