"""``GET /openapi.json``: the gateway's OpenAPI 3.1 document, generated from its models.

Nothing here is written by hand that a model already says: the submission
schema is ``Submission``'s, narrowed per task type (its name as a constant, its
payload model's JSON Schema, its caps on the options), and the response
bodies are ``warren.service.http.schemas``. One document per catalog, built once.
The fuzz tests (``tests/test_fuzz_gateway.py``) hold the gateway to it.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from aiohttp import web
from pydantic.json_schema import models_json_schema

from warren.service.contracts import Catalog, TaskContract
from warren.service.http.idempotency import IDEMPOTENCY_KEY
from warren.service.http.keys import CATALOG
from warren.service.http.openapi_batch import batch_operation, batch_variant
from warren.service.http.openapi_ops import OPS_MODELS, ops_paths
from warren.service.http.openapi_parts import (
    AUTH,
    BEARER,
    LOCATION,
    OPEN,
    REF,
    TASK_ID_PARAM,
    header_param,
    json_content,
    query_param,
    ref,
    responses,
)
from warren.service.http.problems import PROBLEM_JSON
from warren.service.http.schemas import RESPONSE_MODELS
from warren.service.http.submission import Submission
from warren.service.http.task_reads import MAX_PAGE, MAX_WAIT_SECONDS

PROBLEMS = {
    "400": "Malformed request: not JSON, duplicate keys, too deep, a bad parameter or header.",
    "401": "No valid API key.",
    "403": "The API key lacks the scope (or task type) this needs.",
    "404": "No such task.",
    "408": "The body did not arrive in time.",
    "409": "The task is finished, or the Idempotency-Key is taken or in use.",
    "413": "The body is larger than the gateway accepts.",
    "415": "Not `application/json` in UTF-8.",
    "422": "Valid JSON but not a valid submission; `errors` says where.",
    "429": "Over the client's rate limit, or the queue is full; see `Retry-After`.",
    "503": "The broker or the task store cannot be reached; see `Retry-After`.",
}


def _submission_variant(contract: TaskContract[Any], base: dict[str, Any]) -> dict[str, Any]:
    """``Submission`` for one task type: its name, its payload schema and its caps."""
    schema = copy.deepcopy(base)
    schema["title"] = f"Submission of {contract.name}"
    props = schema["properties"]
    props["type"] = {"const": contract.name, "description": props["type"]["description"]}
    props["payload"] = ref(_payload_name(contract))
    props["max_attempts"]["anyOf"][0]["maximum"] = contract.max_attempts_cap
    props["timeout_seconds"]["anyOf"][0]["maximum"] = contract.timeout_cap_seconds
    return schema


def _payload_name(contract: TaskContract[Any]) -> str:
    return f"Payload.{contract.name}"


def _schemas(catalog: Catalog) -> dict[str, Any]:
    models = (*RESPONSE_MODELS, *OPS_MODELS)
    _, top = models_json_schema([(m, "serialization") for m in models], ref_template=REF)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    base = Submission.model_json_schema(ref_template=REF)
    for contract in catalog.values():
        payload = contract.adapter.json_schema(ref_template=REF)
        for name, definition in payload.pop("$defs", {}).items():
            if schemas.setdefault(name, definition) != definition:
                raise ValueError(f"two payload models define {name!r} differently")
        schemas[_payload_name(contract)] = payload
        variant = _submission_variant(contract, base)
        schemas[f"Submission.{contract.name}"] = variant
        schemas[f"BatchTask.{contract.name}"] = batch_variant(variant)
    return schemas


def _submit(catalog: Catalog) -> dict[str, Any]:
    variants = [ref(f"Submission.{name}") for name in catalog]
    return {
        "operationId": "submitTask",
        "summary": "Submit a task (scope `submit`).",
        "security": BEARER,
        "parameters": [
            query_param(
                "wait",
                {"type": "number", "minimum": 0, "maximum": MAX_WAIT_SECONDS},
                "Submit and wait: seconds to wait for the task to end; ended in time, the "
                "answer is its final record (200), else the usual 202.",
            ),
            header_param(
                "Idempotency-Key",
                {"type": "string", "pattern": IDEMPOTENCY_KEY.pattern},
                "The same key and body again returns the original task (200).",
            ),
            header_param(
                "X-Warren-Client",
                {"type": "string"},
                "Who submits, without authentication (scopes idempotency keys).",
            ),
            header_param(
                "traceparent",
                {"type": "string"},
                "W3C trace context to continue; a malformed one is ignored.",
            ),
            header_param("tracestate", {"type": "string"}, "W3C vendor trace state."),
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"oneOf": variants}}},
        },
        "responses": responses(
            {
                "202": json_content(ref("TaskAccepted"), "Accepted and queued.", headers=LOCATION),
                "200": json_content(
                    {"anyOf": [ref("TaskRecordBody"), ref("TaskAccepted")]},
                    "With `wait`: the task ended in time, its final record. With an "
                    "Idempotency-Key used before: the original task (`Idempotent-Replayed`).",
                    headers=LOCATION,
                ),
            },
            *("400", "408", "409", "413", "415", "422", "503", *AUTH),
        ),
    }


def _list() -> dict[str, Any]:
    return {
        "operationId": "listTasks",
        "summary": "Task records, newest first (scope `read`).",
        "security": BEARER,
        "parameters": [
            query_param("status", {"type": "string"}, "Comma-separated statuses."),
            query_param("type", {"type": "string"}, "Task type."),
            query_param("queue", {"type": "string"}, "Queue."),
            query_param("since", {"type": "string", "format": "date-time"}, "Created at or after."),
            query_param(
                "limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}, "Page size."
            ),
            query_param("cursor", {"type": "string"}, "`next_cursor` of the previous page."),
        ],
        "responses": responses(
            {"200": json_content(ref("TaskPage"), "One page.")}, "400", "503", *AUTH
        ),
    }


def _task() -> dict[str, Any]:
    record = ref("TaskRecordBody")
    wait = {"type": "number", "minimum": 0, "maximum": MAX_WAIT_SECONDS}
    return {
        "parameters": [TASK_ID_PARAM],
        "get": {
            "operationId": "getTask",
            "summary": "A task's record (scope `read`); `wait` long-polls for a final state.",
            "security": BEARER,
            "parameters": [query_param("wait", wait, "Seconds to wait for a final state.")],
            "responses": responses(
                {"200": json_content(record, "The record.")}, "400", "404", "503", *AUTH
            ),
        },
        "delete": {
            "operationId": "cancelTask",
            "summary": "Cancel a task (scope `submit`).",
            "security": BEARER,
            "responses": responses(
                {
                    "202": json_content(record, "Cancellation sent."),
                    "200": json_content(record, "Already cancelled."),
                },
                *("404", "409", "503", *AUTH),
            ),
        },
    }


def _events() -> dict[str, Any]:
    stream = {"schema": {"type": "string"}}
    return {
        "parameters": [TASK_ID_PARAM],
        "get": {
            "operationId": "taskEvents",
            "summary": "Server-Sent Events of a task's record until it is final (scope `read`).",
            "security": BEARER,
            "parameters": [header_param("Last-Event-ID", {"type": "string"}, "Last version seen.")],
            "responses": responses(
                {
                    "200": {"description": "The stream.", "content": {"text/event-stream": stream}},
                    "204": {"description": "Already final at the version given: stop."},
                },
                *("404", "503", *AUTH),
            ),
        },
    }


def _simple(operation_id: str, summary: str, ok: dict[str, Any], *problems: str) -> dict[str, Any]:
    open_ = not problems or problems == ("503",)
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "security": OPEN if open_ else BEARER,
            "responses": responses({"200": ok}, *problems),
        }
    }


def _paths(catalog: Catalog) -> dict[str, Any]:
    text = {"description": "Prometheus text format.", "content": {"text/plain": {}}}
    document = {"description": "This document.", "content": {"application/json": {}}}
    return {
        "/v1/tasks": {"post": _submit(catalog), "get": _list()},
        "/v1/tasks/batch": {"post": batch_operation(catalog)},
        "/v1/tasks/{id}": _task(),
        "/v1/tasks/{id}/events": _events(),
        "/v1/task-types": _simple(
            "taskTypes",
            "The task types and their payload schemas (scope `read`).",
            json_content({"type": "array", "items": ref("TaskTypeInfo")}, "The catalog."),
            *AUTH,
        ),
        "/v1/schedules": _simple(
            "schedules",
            "The app's schedules with their last and next tick (scope `read`).",
            json_content(ref("SchedulePage"), "Every schedule."),
            *AUTH,
        ),
        "/healthz": _simple(
            "healthz", "The process is alive.", json_content(ref("Health"), "Alive.")
        ),
        "/readyz": _simple(
            "readyz", "The broker connection is up.", json_content(ref("Ready"), "Ready."), "503"
        ),
        "/metrics": _simple("metrics", "Prometheus metrics.", text),
        "/openapi.json": _simple("openapi", "This OpenAPI document.", document),
        **ops_paths(),  # queues and dead letters
    }


@lru_cache(maxsize=8)
def openapi_document(catalog: Catalog) -> dict[str, Any]:
    """The document for a catalog (cached: catalogs are immutable values)."""
    problem = {PROBLEM_JSON: {"schema": ref("ProblemDetails")}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Warren gateway",
            "version": "1",
            "description": "Submit tasks to Warren's queues and follow them.",
        },
        "paths": _paths(catalog),
        "components": {
            "schemas": _schemas(catalog),
            "responses": {
                f"Problem{code}": {"description": text, "content": problem}
                for code, text in PROBLEMS.items()
            },
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (`warren keys new`) with the scope the "
                    "operation names: `submit`, `read` or `admin`.",
                }
            },
        },
    }


async def serve_openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(request.app[CATALOG]))
