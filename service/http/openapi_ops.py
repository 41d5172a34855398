"""The operations routes in the OpenAPI document: queues and dead letters, their bodies.

Kept apart from ``openapi`` (the task API) so each stays short; ``openapi``
merges ``OPS_MODELS`` into its schemas and ``ops_paths()`` into its paths.
"""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, Field

from warren.service.http.dead_letters import MAX_IDS, MAX_PAGE

REF = "#/components/schemas/{model}"
BEARER: list[dict[str, list[str]]] = [{"apiKey": []}]
AUTH = ("401", "403", "429")


class DeadLetterBody(BaseModel):
    """One dead letter (``GET /v1/dead-letters`` items; with ``payload`` when read alone)."""

    id: str = Field(description="The task id (or, for a delivery without one, a content hash).")
    queue: str
    type: str | None
    reason: str | None
    error_type: str | None
    error: str | None
    attempts: int | None
    dead_at: AwareDatetime
    payload_size: int
    submitter: str | None
    payload: Any = Field(None, description="The payload (single reads only).")
    payload_kept: bool | None = Field(None, description="False: over the size bound.")
    headers: dict[str, Any] | None = None


class DeadLetterPage(BaseModel):
    items: list[DeadLetterBody]
    next_cursor: str | None


class Replayed(BaseModel):
    replayed: int = Field(ge=0)


class Discarded(BaseModel):
    discarded: int = Field(ge=0)


class QueueBody(BaseModel):
    name: str
    ready: int | None = Field(description="Ready messages (broker); null: broker not linked.")
    unacked: int = Field(description="Deliveries being run (Warren's running tasks).")
    consumers: int | None
    retrying: int
    retry_tiers: dict[str, int | None]
    scheduled: int = Field(description="Delayed tasks not due yet (records still `scheduled`).")
    dead_letters: int
    rates: dict[str, float] = Field(description="publish, deliver, ack per second, last minute.")


class QueueList(BaseModel):
    queues: list[QueueBody]


OPS_MODELS: tuple[type[BaseModel], ...] = (
    DeadLetterPage,
    Replayed,
    Discarded,
    QueueList,
)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _ok(name: str, description: str, *problems: str) -> dict[str, Any]:
    return {
        "200": {
            "description": description,
            "content": {"application/json": {"schema": _ref(name)}},
        },
        **{code: {"$ref": f"#/components/responses/Problem{code}"} for code in problems},
    }


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


def _selection_body() -> dict[str, Any]:
    filter_ = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "queue": {"type": "string"},
            "type": {"type": "string"},
            "reason": {"type": "string"},
            "since": {"type": "string", "format": "date-time"},
        },
    }
    ids = {
        "type": "array",
        "maxItems": MAX_IDS,
        "items": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
    }
    schema = {
        "oneOf": [
            {
                "type": "object",
                "required": ["ids"],
                "additionalProperties": False,
                "properties": {"ids": ids},
            },
            {
                "type": "object",
                "required": ["filter"],
                "additionalProperties": False,
                "properties": {"filter": filter_},
            },
        ]
    }
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _post(operation_id: str, summary: str, name: str) -> dict[str, Any]:
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "security": BEARER,
            "requestBody": _selection_body(),
            "responses": _ok(name, "How many.", "400", "422", "503", *AUTH),
        }
    }


def _console(operation_id: str, summary: str, *types: str) -> dict[str, Any]:
    """The page (``text/html``), or an asset by ``name`` (its types; else a 404)."""
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "security": [],
        "responses": {
            "200": {"description": "The file.", "content": {t: {} for t in types or ["text/html"]}}
        },
    }
    if types:
        operation["parameters"] = [name]
        operation["responses"]["404"] = {"$ref": "#/components/responses/Problem404"}
    return {"get": operation}


def ops_paths() -> dict[str, Any]:
    filters = [
        _query("queue", {"type": "string"}),
        _query("type", {"type": "string"}),
        _query("reason", {"type": "string"}),
        _query("since", {"type": "string", "format": "date-time"}),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
        _query("cursor", {"type": "string"}),
    ]
    one = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "/v1/queues": {
            "get": {
                "operationId": "listQueues",
                "summary": "Each queue's depths, dead letters and rates (scope `read`).",
                "security": BEARER,
                "responses": _ok("QueueList", "The queues.", "503", *AUTH),
            }
        },
        "/v1/dead-letters": {
            "get": {
                "operationId": "listDeadLetters",
                "summary": "Dead letters, newest first, read without consuming them (`read`).",
                "security": BEARER,
                "parameters": filters,
                "responses": _ok("DeadLetterPage", "One page.", "400", "503", *AUTH),
            }
        },
        "/v1/dead-letters/{id}": {
            "get": {
                "operationId": "getDeadLetter",
                "summary": "One dead letter with its payload (scope `read`).",
                "security": BEARER,
                "parameters": [one],
                "responses": _ok("DeadLetterBody", "The dead letter.", "404", "503", *AUTH),
            }
        },
        "/v1/console/events": {
            "get": {
                "operationId": "consoleEvents",
                "summary": "Server-Sent Events: `queues` every 2 s, `tasks` pings (`read`).",
                "security": BEARER,
                "responses": {
                    "200": {"description": "The stream.", "content": {"text/event-stream": {}}},
                    **{c: {"$ref": f"#/components/responses/Problem{c}"} for c in AUTH},
                },
            }
        },
        "/console": _console("consolePage", "The web console (sign in with an API key)."),
        "/console/{name}": _console(
            "consoleAsset", "A console asset (script, styles).", "text/javascript", "text/css"
        ),
        "/v1/dead-letters/replay": _post(
            "replayDeadLetters",
            "Re-publish dead letters as attempt n+1 (scope `admin`).",
            "Replayed",
        ),
        "/v1/dead-letters/discard": _post(
            "discardDeadLetters", "Delete dead letters (scope `admin`).", "Discarded"
        ),
    }
