"""The small pieces the gateway's OpenAPI document is built of (``openapi``, ``openapi_batch``)."""

from __future__ import annotations

from typing import Any

REF = "#/components/schemas/{model}"
SecurityRequirements = list[dict[str, list[str]]]
BEARER: SecurityRequirements = [{"apiKey": []}]
OPEN: SecurityRequirements = []


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def json_content(schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
        **extra,
    }


def responses(ok: dict[str, Any], *problems: str) -> dict[str, Any]:
    return {**ok, **{code: {"$ref": f"#/components/responses/Problem{code}"} for code in problems}}


def query_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def header_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "schema": schema,
        "description": description,
    }


TASK_ID_PARAM = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
LOCATION = {"Location": {"description": "The task's URL.", "schema": {"type": "string"}}}
AUTH = ("401", "403", "429")
