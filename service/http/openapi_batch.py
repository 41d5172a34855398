"""``POST /v1/tasks/batch`` in the OpenAPI document: the batch body and its tasks' schemas.

A batch task is the task type's submission schema plus its own ``idempotency_key``
(the header's role for a single submission); the answer is ``schemas.BatchAnswer``.
"""

from __future__ import annotations

import copy
from typing import Any

from warren.service.contracts import Catalog
from warren.service.http.idempotency import IDEMPOTENCY_KEY
from warren.service.http.openapi_parts import (
    AUTH,
    BEARER,
    header_param,
    json_content,
    ref,
    responses,
)


def batch_operation(catalog: Catalog) -> dict[str, Any]:
    variants = [ref(f"BatchTask.{name}") for name in catalog]
    body = {
        "type": "object",
        "properties": {
            "tasks": {
                "type": "array",
                "minItems": 1,
                "items": {"oneOf": variants},
                "description": "Submissions, each with an optional `idempotency_key`; at "
                "most `WARREN_MAX_BATCH_TASKS`.",
            }
        },
        "required": ["tasks"],
        "additionalProperties": False,
    }
    return {
        "operationId": "submitTasks",
        "summary": "Submit a batch of tasks (scope `submit`): one answer per task, in order.",
        "security": BEARER,
        "parameters": [header_param("traceparent", {"type": "string"}, "W3C trace context.")],
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": responses(
            {"200": json_content(ref("BatchAnswer"), "Each task accepted, or its problem.")},
            *("400", "408", "413", "415", "422", *AUTH),
        ),
    }


def batch_variant(submission: dict[str, Any]) -> dict[str, Any]:
    """A batch's task: the type's submission, plus its own ``Idempotency-Key``."""
    schema = copy.deepcopy(submission)
    schema["title"] = schema["title"].replace("Submission", "Batch task")
    schema["properties"]["idempotency_key"] = {
        "type": "string",
        "pattern": IDEMPOTENCY_KEY.pattern,
        "description": "As the `Idempotency-Key` header of a single submission, per task.",
    }
    return schema
