"""``GET /openapi.json``: a valid OpenAPI 3.1 document that describes every route the gateway has.

Why: clients generate code from it and the fuzz tests (``test_fuzz_gateway``)
hold the gateway to it, so it must be valid, complete (a route added without
documentation fails here), and served without an API key like the probes.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import orjson
import pytest
from aio_pika.abc import AbstractChannel
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate

from tests.conftest import make_settings
from tests.demo import CATALOG
from warren.service.http.app import create_app
from warren.service.http.auth import hash_token, new_token
from warren.service.http.openapi import openapi_document
from warren.service.settings import Settings

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
OPEN = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/console", "/console/{name}"}


def operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }


def test_the_document_is_valid_openapi_3_1() -> None:
    document = openapi_document(CATALOG)
    assert document["openapi"].startswith("3.1.")
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema


def test_every_route_of_the_app_is_documented_and_nothing_else() -> None:
    app = create_app(make_settings())
    routes = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"  # aiohttp's HEAD for each GET
    }
    assert routes == operations(openapi_document(CATALOG))


def test_open_routes_need_no_key_and_the_others_a_bearer_token() -> None:
    document = openapi_document(CATALOG)
    scheme = document["components"]["securitySchemes"]["apiKey"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer"}
    for method, path in operations(document):
        operation = document["paths"][path][method.lower()]
        if path in OPEN:
            assert operation["security"] == [], path
        else:
            assert operation["security"] == [{"apiKey": []}], path
            assert {"401", "403", "429"} <= set(operation["responses"]), path


def _submission_validator(document: dict[str, Any]) -> jsonschema.Draft202012Validator:
    body = document["paths"]["/v1/tasks"]["post"]["requestBody"]["content"]["application/json"]
    root = {**body["schema"], "components": document["components"]}
    return jsonschema.Draft202012Validator(root)


@pytest.mark.parametrize(
    ("submission", "valid"),
    [
        ({"type": "diag.echo", "payload": {"message": "hi"}}, True),
        ({"type": "diag.sleep", "payload": {"ms": 5}, "max_attempts": 25, "priority": 9}, True),
        ({"type": "diag.echo", "payload": {"ms": 5}}, False),  # another type's payload
        ({"type": "diag.nope", "payload": {}}, False),
        ({"type": "diag.echo", "payload": {"message": "hi"}, "max_attempts": 26}, False),
        ({"type": "diag.sleep", "payload": {"ms": 1}, "timeout_seconds": 1200}, True),
        ({"type": "diag.echo", "payload": {"message": "hi"}, "timeout_seconds": 1200}, False),
        ({"type": "diag.echo", "payload": {"message": "hi"}, "id": "mine"}, False),
    ],
)
def test_the_submission_schema_is_each_type_with_its_payload_and_caps(
    submission: dict[str, Any], valid: bool
) -> None:
    validator = _submission_validator(openapi_document(CATALOG))
    assert validator.is_valid(submission) is valid


async def test_served_without_a_key_as_json(settings: Settings, channel: AbstractChannel) -> None:
    # Given a gateway with API keys on (the namespace is the `channel` fixture's, cleaned up)
    token = new_token("reader")
    keys = [{"id": "reader", "token_sha256": hash_token(token), "scopes": ["read"]}]
    keyed = make_settings(
        namespace=settings.namespace, auth_disabled=False, api_keys=orjson.dumps(keys).decode()
    )
    async with TestClient(TestServer(create_app(keyed))) as client:
        # When a client without a key asks for the document, it gets it
        response = await client.get("/openapi.json")
        assert response.status == 200
        assert response.content_type == "application/json"
        served = await response.json()
        assert served == openapi_document(CATALOG)
        # and a route the document says needs a key does answer 401 without one
        assert "401" in served["paths"]["/v1/task-types"]["get"]["responses"]
        assert (await client.get("/v1/task-types")).status == 401
        with_key = await client.get("/v1/task-types", headers={"Authorization": f"Bearer {token}"})
        assert with_key.status == 200
