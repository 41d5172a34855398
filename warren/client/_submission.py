"""A submission as a ``Call``: its body, its local validation, its ``Idempotency-Key``.

Given a contract, the payload is checked as the gateway would check it — the
same JSON in, the same pydantic model, the same problem out — so a bad payload
fails at once, with no request, and code handling the gateway's 422 handles it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from functools import partial
from typing import Any

import httpx
import orjson
from opentelemetry import propagate
from pydantic import BaseModel, ValidationError

from warren.client._core import Call, checked
from warren.client.errors import ValidationFailed
from warren.client.models import TaskAccepted
from warren.service.contracts import TaskContract

Payload = BaseModel | Mapping[str, Any]


def submit_call(
    task: str | TaskContract[Any],
    payload: Payload,
    *,
    max_attempts: int | None = None,
    timeout_seconds: float | None = None,
    priority: int | None = None,
    idempotency_key: str | bool | None = None,
) -> Call[TaskAccepted]:
    """``POST /v1/tasks``: repeatable after a broken connection only with a key.

    ``idempotency_key=True`` generates one, sent with every retry of this call.
    The current OpenTelemetry context is sent as ``traceparent``: the task joins
    the caller's trace.
    """
    data = _json_payload(payload)
    if isinstance(task, TaskContract):
        validate_locally(task, data, max_attempts, timeout_seconds)
        task = task.name
    body: dict[str, Any] = {"type": task, "payload": data}
    options = {"max_attempts": max_attempts, "timeout_seconds": timeout_seconds}
    body.update((name, value) for name, value in options.items() if value is not None)
    if priority is not None:
        body["priority"] = priority
    key = uuid.uuid4().hex if idempotency_key is True else idempotency_key or None
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Idempotency-Key"] = key
    propagate.inject(headers)
    return Call(
        "POST",
        "/v1/tasks",
        partial(_accepted, key=key),
        body=orjson.dumps(body),
        headers=headers,
        repeatable=key is not None,
    )


def _accepted(response: httpx.Response, key: str | None) -> TaskAccepted:
    body = orjson.loads(checked(response).content)
    replayed = response.headers.get("Idempotent-Replayed") == "true"
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
