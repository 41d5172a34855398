"""A submission as a ``Call``: its body, its local validation, its ``Idempotency-Key``.

Given a contract, the payload is checked as the gateway would check it — the
same JSON in, the same pydantic model, the same problem out — so a bad payload
fails at once, with no request, and code handling the gateway's 422 handles it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import httpx
import orjson
from opentelemetry import propagate
from pydantic import BaseModel, ValidationError

from warren.client._core import MAX_WAIT_SECONDS, Call, checked
from warren.client.errors import ValidationFailed
from warren.client.models import TaskAccepted, TaskRecord
from warren.service.contracts import TaskContract

Payload = BaseModel | Mapping[str, Any]
Submitted = TaskAccepted | TaskRecord
"""A submission's answer: accepted, or (submit and wait) the task's final record."""


@dataclass(frozen=True)
class Submission:
    """One task, as ``submit`` takes it: a value, for ``submit_batch``.

    ``task`` is a type name or its ``TaskContract`` (then ``payload`` and the options are
    validated locally, as ``submit`` does); ``idempotency_key`` a string, or ``True`` to
    generate one; ``delay_seconds`` or ``run_at`` (aware, sent as RFC 3339) to run it later.
    """

    task: str | TaskContract[Any]
    payload: Payload
    max_attempts: int | None = None
    timeout_seconds: float | None = None
    priority: int | None = None
    idempotency_key: str | bool | None = None
    delay_seconds: float | None = None
    run_at: datetime | None = None

    def body(self) -> tuple[dict[str, Any], str | None]:
        """The submission's JSON body and its idempotency key (generated if asked for);
        ``ValidationFailed`` if its contract refuses it."""
        data = _json_payload(self.payload)
        task = self.task
        if isinstance(task, TaskContract):
            validate_locally(task, data, self.max_attempts, self.timeout_seconds)
            task = task.name
        body: dict[str, Any] = {"type": task, "payload": data}
        options = {"max_attempts": self.max_attempts, "timeout_seconds": self.timeout_seconds}
        body.update((name, value) for name, value in options.items() if value is not None)
        if self.priority is not None:
            body["priority"] = self.priority
        body.update(when(self.delay_seconds, self.run_at))
        key = self.idempotency_key
        return body, uuid.uuid4().hex if key is True else key or None


def when(delay_seconds: float | None, run_at: datetime | None) -> dict[str, Any]:
    """The body's ``delay_seconds`` or ``run_at``; the gateway's 422 for what it would refuse
    whatever the clock says (both given, a negative delay, a time without its offset)."""
    if delay_seconds is not None and run_at is not None:
        raise _invalid(
            [
                {
                    "loc": ["run_at"],
                    "msg": "give delay_seconds or run_at, not both",
                    "type": "conflict",
                }
            ],
            "one way to say when",
        )
    if delay_seconds is not None:
        if delay_seconds < 0:
            error = {"loc": ["delay_seconds"], "msg": "at least 0", "type": "greater_than_equal"}
            raise _invalid([error], "a delay is 0 or more seconds")
        return {"delay_seconds": delay_seconds}
    if run_at is not None:
        if run_at.utcoffset() is None:
            msg = "Input should have timezone info"
            raise _invalid([{"loc": ["run_at"], "msg": msg, "type": "timezone_aware"}], msg)
        return {"run_at": run_at.isoformat()}
    return {}


def submit_call(submission: Submission, wait: float | None = None) -> Call[Submitted]:
    """``POST /v1/tasks``: repeatable after a broken connection only with a key.

    ``idempotency_key=True`` generates one, sent with every retry of this call.
    The current OpenTelemetry context is sent as ``traceparent``: the task joins
    the caller's trace. With ``wait``, the gateway answers with the final record if
    the task ends within that many seconds (at most ``MAX_WAIT_SECONDS``).
    """
    body, key = submission.body()
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Idempotency-Key"] = key
    propagate.inject(headers)
    if wait is not None and not 0 <= wait <= MAX_WAIT_SECONDS:
        raise ValueError(f"wait is from 0 to {MAX_WAIT_SECONDS:g} s; for longer, use wait()")
    return Call(
        "POST",
        "/v1/tasks",
        partial(_accepted_or_final, key=key),
        params={"wait": f"{wait:.3f}"} if wait else None,
        body=orjson.dumps(body),
        headers=headers,
        read_timeout=wait + 10.0 if wait else None,
        repeatable=key is not None,
    )


def _accepted_or_final(response: httpx.Response, key: str | None) -> Submitted:
    """A 200 that is not an idempotent replay is the final record of a submit-and-wait."""
    replayed = response.headers.get("Idempotent-Replayed") == "true"
    if response.status_code == 200 and not replayed:
        return TaskRecord.model_validate_json(response.content)
    body = orjson.loads(checked(response).content)
    return TaskAccepted.model_validate({**body, "replayed": replayed, "idempotency_key": key})


def _json_payload(payload: Payload) -> Any:
    """The payload as the gateway will parse it: through JSON, whatever it was given as."""
    if isinstance(payload, BaseModel):
        return payload.model_dump(mode="json")
    return orjson.loads(orjson.dumps(payload))


def validate_locally(
    contract: TaskContract[Any],
    payload: Any,
    max_attempts: int | None = None,
    timeout_seconds: float | None = None,
) -> None:
    """Raise the ``ValidationFailed`` the gateway would answer for this payload and options."""
    try:
        contract.adapter.validate_python(payload)
    except ValidationError as exc:
        raise _invalid(_field_errors(exc), f"payload of {contract.name}") from None
    caps = [
        ("max_attempts", max_attempts, contract.max_attempts_cap),
        ("timeout_seconds", timeout_seconds, contract.timeout_cap_seconds),
    ]
    errors = [
        {"loc": [name], "type": "less_than_equal", "msg": f"at most {cap} for {contract.name}"}
        for name, value, cap in caps
        if (value or 0) > cap
    ]
    if errors:
        raise _invalid(errors, "options beyond the task type's caps")


def _field_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """As the gateway lists them: under ``payload``, without echoing the input."""
    return [
        {"loc": ["payload", *e["loc"]], "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def _invalid(errors: list[dict[str, Any]], detail: str) -> ValidationFailed:
    title = "Unprocessable Content"
    body = {
        "type": "/problems/validation-failed",
        "title": title,
        "status": 422,
        "code": "validation-failed",
        "detail": detail,
        "errors": errors,
    }
    return ValidationFailed(422, "validation-failed", title, detail, errors, body=body)
