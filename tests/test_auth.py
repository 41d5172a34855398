"""API keys on the real gateway and broker: who may submit, see and cancel which tasks."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aio_pika.abc import AbstractChannel
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import make_settings
from tests.processes import REPO
from tests.support import message_count
from warren.service.cli import parser
from warren.service.errors import ConfigurationError
from warren.service.http.app import create_app
from warren.service.http.auth import DEV_KEY, DEV_TOKEN, ApiKey, hash_token, new_token
from warren.service.keys_cli import entry
from warren.service.settings import Settings
from warren.service.tasks_cli import run

Client = TestClient[Any, Any]
ECHO = {"type": "diag.echo", "payload": {"message": "hi"}}

TOKENS = {name: new_token(name) for name in ("shop", "bank", "reader", "echoer", "ops")}
SCOPES = {
    "shop": ["submit", "read"],
    "bank": ["submit", "read"],
    "reader": ["read"],
    "echoer": ["submit", "read"],
    "ops": ["admin"],
}


def key_entry(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": name,
        "token_sha256": hash_token(TOKENS[name]),
        "scopes": SCOPES[name],
        **extra,
    }


KEYS = [key_entry(n) for n in SCOPES if n != "echoer"] + [key_entry("echoer", types=["diag.echo"])]


def wrong_last(token: str) -> str:
    """The token with its last character changed (random tokens may already end in "A")."""
    return token[:-1] + ("B" if token.endswith("A") else "A")


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


def keyed_settings(settings: Settings, **overrides: Any) -> Settings:
    """Authentication on, in the test's namespace (so the `channel` fixture cleans up)."""
    values: dict[str, Any] = {"auth_disabled": False, "api_keys": json.dumps(KEYS)}
    return make_settings(
        namespace=settings.namespace, store_url=settings.store_url, **{**values, **overrides}
    )


@pytest.fixture
async def keyed(settings: Settings, channel: AbstractChannel) -> AsyncIterator[Client]:
    async with TestClient(TestServer(create_app(keyed_settings(settings)))) as client:
        yield client


async def work_messages(channel: AbstractChannel, settings: Settings) -> int:
    return await message_count(channel, f"{settings.namespace}.diag")


async def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body: dict[str, Any] = await response.json()
    assert body["status"] == status
    return body


# --- 401 -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "missing-credentials"),
        ("Bearer", "invalid-token"),
        ("Bearer garbage", "invalid-token"),
        (f"Basic {TOKENS['shop']}", "invalid-token"),  # not a bearer token
        (f"Bearer {TOKENS['shop']}x", "invalid-token"),  # one character more
        (f"Bearer {wrong_last(TOKENS['shop'])}", "invalid-token"),  # a wrong secret, known id
        (f"Bearer {new_token('nobody')}", "invalid-token"),  # a well-formed token of no key
        (f"Bearer {hash_token(TOKENS['shop'])}", "invalid-token"),  # the configured hash
    ],
)
async def test_without_a_valid_key_it_is_401_and_nothing_is_published(
    keyed: Client,
    channel: AbstractChannel,
    settings: Settings,
    authorization: str | None,
    code: str,
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = await keyed.post("/v1/tasks", json=ECHO, headers=headers)
    body = await problem(response, 401)
    assert body["code"] == code
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert await work_messages(channel, settings) == 0
    for path in ("/v1/tasks", "/v1/task-types", "/v1/tasks/0123456789abcdef0123456789abcdef"):
        assert (await keyed.get(path, headers=headers)).status == 401


async def test_probes_and_scrape_stay_open_and_the_bearer_scheme_is_case_insensitive(
    keyed: Client,
) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await keyed.get(path)).status == 200, path
    types = await keyed.get("/v1/task-types", headers={"Authorization": f"bearer {TOKENS['ops']}"})
    assert types.status == 200  # any valid key lists the task types
    refused = await keyed.get("/metrics")
    assert "warren_requests_refused_total{" in await refused.text()


# --- 403 -----------------------------------------------------------------------


async def test_a_key_without_the_scope_gets_403_and_nothing_is_published(
    keyed: Client, channel: AbstractChannel, settings: Settings
) -> None:
    refused = await keyed.post("/v1/tasks", json=ECHO, headers=bearer("reader"))
    body = await problem(refused, 403)
    assert body["code"] == "forbidden" and "submit" in body["detail"]
    assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
    refused = await keyed.post("/v1/tasks", json=ECHO, headers=bearer("ops"))  # admin ≠ submit
    assert (await problem(refused, 403))["code"] == "forbidden"
    assert await work_messages(channel, settings) == 0
    # A submit-only key cannot read, a read-only key cannot cancel.
    writer = [key_entry("shop", scopes=["submit"]), key_entry("reader")]
    async with TestClient(
        TestServer(create_app(keyed_settings(settings, api_keys=json.dumps(writer))))
    ) as gateway:
        accepted = await (await gateway.post("/v1/tasks", json=ECHO, headers=bearer("shop"))).json()
        read = await gateway.get(f"/v1/tasks/{accepted['id']}", headers=bearer("shop"))
        assert (await problem(read, 403))["code"] == "forbidden"
        listed = await gateway.get("/v1/tasks", headers=bearer("shop"))
        assert (await problem(listed, 403))["code"] == "forbidden"
        cancel = await gateway.delete(f"/v1/tasks/{accepted['id']}", headers=bearer("reader"))
        assert (await problem(cancel, 403))["code"] == "forbidden"
    assert await work_messages(channel, settings) == 1


async def test_a_type_the_key_may_not_submit_is_403_before_its_idempotency_key_is_claimed(
    keyed: Client, channel: AbstractChannel, settings: Settings
) -> None:
    sleep = {"type": "diag.sleep", "payload": {"ms": 1}}
    headers = {**bearer("echoer"), "Idempotency-Key": "order-7"}
    refused = await keyed.post("/v1/tasks", json=sleep, headers=headers)
    body = await problem(refused, 403)
    assert body["code"] == "forbidden-type" and "diag.sleep" in body["detail"]
    assert await work_messages(channel, settings) == 0
    # The key was not claimed: another submission with it is accepted, not a 409.
    accepted = await keyed.post("/v1/tasks", json=ECHO, headers=headers)
    assert accepted.status == 202, await accepted.text()
    assert await work_messages(channel, settings) == 1


# --- whose tasks ------------------------------------------------------------------


async def test_a_clients_tasks_are_invisible_and_uncancellable_to_another_but_not_to_admin(
    keyed: Client, channel: AbstractChannel, settings: Settings
) -> None:
    shop = await (await keyed.post("/v1/tasks", json=ECHO, headers=bearer("shop"))).json()
    bank = await (await keyed.post("/v1/tasks", json=ECHO, headers=bearer("bank"))).json()
    path = f"/v1/tasks/{shop['id']}"

    own = await keyed.get(path, headers=bearer("shop"))
    assert own.status == 200 and (await own.json())["submitter"] == "shop"
    for method, suffix in (("GET", ""), ("GET", "?wait=0.2"), ("GET", "/events"), ("DELETE", "")):
        response = await keyed.request(method, path + suffix, headers=bearer("bank"))
        body = await problem(response, 404)  # as if it did not exist
        assert body["code"] == "not-found", (method, suffix)
    listed = await (await keyed.get("/v1/tasks", headers=bearer("bank"))).json()
    assert [t["id"] for t in listed["items"]] == [bank["id"]]
    listed = await (await keyed.get("/v1/tasks", headers=bearer("reader"))).json()
    assert listed["items"] == []

    seen = await (await keyed.get("/v1/tasks", headers=bearer("ops"))).json()
    assert {t["id"] for t in seen["items"]} == {shop["id"], bank["id"]}
    cancelled = await keyed.delete(path, headers=bearer("ops"))
    assert cancelled.status == 202 and (await cancelled.json())["cancel_requested_at"]
    record = await (await keyed.get(path, headers=bearer("shop"))).json()
    assert record["cancel_requested_at"] and record["submitter"] == "shop"
    assert await work_messages(channel, settings) == 2


async def test_idempotency_keys_belong_to_the_api_key(keyed: Client) -> None:
    ids = set()
    for name in ("shop", "shop", "bank"):
        headers = {**bearer(name), "Idempotency-Key": "k-1", "X-Warren-Client": "bank"}
        response = await keyed.post("/v1/tasks", json=ECHO, headers=headers)
        assert response.status in (200, 202)
        ids.add((name, (await response.json())["id"]))
    assert len({i for _, i in ids}) == 2  # X-Warren-Client is ignored with keys on


# --- configuration ------------------------------------------------------------------


def test_without_keys_the_gateway_refuses_to_start() -> None:
    with pytest.raises(ConfigurationError, match="no API key is configured"):
        create_app(make_settings(auth_disabled=False))


def test_a_bad_key_list_is_refused_without_echoing_its_values(tmp_path: Any) -> None:
    pasted = [{"id": "shop", "token_sha256": TOKENS["shop"], "scopes": ["submit"]}]
    with pytest.raises(ConfigurationError, match="token_sha256") as refused:
        create_app(make_settings(auth_disabled=False, api_keys=json.dumps(pasted)))
    assert TOKENS["shop"] not in str(refused.value)
    twice = json.dumps([key_entry("shop")])
    file = tmp_path / "keys.json"
    file.write_text(twice)
    with pytest.raises(ConfigurationError, match="'shop' is configured twice"):
        create_app(make_settings(auth_disabled=False, api_keys=twice, api_keys_file=file))
    unknown = json.dumps([key_entry("shop", types=["diag.nope"])])
    with pytest.raises(ConfigurationError, match="unknown task types"):
        create_app(make_settings(auth_disabled=False, api_keys=unknown))


async def test_keys_can_come_from_a_file(
    settings: Settings, channel: AbstractChannel, tmp_path: Any
) -> None:
    file = tmp_path / "keys.json"
    file.write_text(json.dumps([key_entry("bank")]))
    shop = json.dumps([key_entry("shop")])
    app = create_app(keyed_settings(settings, api_keys=shop, api_keys_file=file))
    async with TestClient(TestServer(app)) as gateway:
        for name in ("shop", "bank"):  # one key from each source
            response = await gateway.post("/v1/tasks", json=ECHO, headers=bearer(name))
            assert response.status == 202, await response.text()


def test_settings_and_child_environments_hold_hashes_never_tokens(settings: Settings) -> None:
    keyed = keyed_settings(settings)
    shown = [repr(keyed), keyed.model_dump_json(), *keyed.child_environment().values()]
    for token in TOKENS.values():
        assert not any(token in text for text in shown)
    assert hash_token(TOKENS["shop"]) in keyed.child_environment()["WARREN_API_KEYS"]


async def test_with_authentication_off_the_gateway_warns_and_trusts_x_warren_client(
    settings: Settings, channel: AbstractChannel, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "warren.service.http.auth"):
        app = create_app(settings)  # tests' settings: WARREN_AUTH_DISABLED=true
    [warning] = [r for r in caplog.records if r.name == "warren.service.http.auth"]
    assert warning.levelno == logging.WARNING and "authentication is disabled" in warning.message
    async with TestClient(TestServer(app)) as gateway:
        response = await gateway.post("/v1/tasks", json=ECHO, headers={"X-Warren-Client": "shop"})
        accepted = await response.json()
        record = await (await gateway.get(f"/v1/tasks/{accepted['id']}")).json()
        assert record["submitter"] == "shop"  # and anybody sees it, as before keys


async def test_warren_keys_new_prints_a_token_that_its_entry_accepts(
    settings: Settings, channel: AbstractChannel
) -> None:
    made = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "warren", "keys", "new", "--id", "crm",
        "--scopes", "submit,read", "--types", "diag.echo", "--rate", "5",
        cwd=REPO, env=settings.child_environment(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(made.communicate(), 30)
    assert made.returncode == 0, err
    token, line = out.decode().splitlines()
    configured = json.loads(line)
    assert configured["id"] == "crm" and token.startswith("wrn_crm_")
    assert configured["token_sha256"] == hash_token(token) and token not in line
    assert configured["scopes"] == ["read", "submit"] and configured["types"] == ["diag.echo"]
    assert configured["rate_limit_per_second"] == 5
    assert b"not kept anywhere" in err
    app = create_app(keyed_settings(settings, api_keys=json.dumps([configured])))
    async with TestClient(TestServer(app)) as gateway:
        headers = {"Authorization": f"Bearer {token}"}
        accepted = await gateway.post("/v1/tasks", json=ECHO, headers=headers)
        assert accepted.status == 202, await accepted.text()
        task = (await accepted.json())["id"]
        record = await (await gateway.get(f"/v1/tasks/{task}", headers=headers)).json()
        assert record["submitter"] == "crm"


def test_the_dev_key_is_the_one_the_readme_quick_start_sends() -> None:
    assert DEV_KEY.token_sha256 == hash_token(DEV_TOKEN)
    assert DEV_KEY.scopes == {"submit", "read", "admin"}
    assert ApiKey.model_validate(entry(DEV_KEY)) == DEV_KEY
    assert f"Authorization: Bearer {DEV_TOKEN}" in (REPO / "README.md").read_text()


async def test_warren_tasks_sends_its_token_as_a_bearer_key(keyed: Client) -> None:
    """`warren tasks` reaches a client's task only with that client's `--token`."""
    response = await keyed.post("/v1/tasks", json=ECHO, headers=bearer("shop"))
    task_id = (await response.json())["id"]

    async def tasks(*argv: str) -> tuple[int, str]:
        out = io.StringIO()
        args = parser().parse_args(["tasks", *argv])
        return await run(args, str(keyed.make_url("")), out), out.getvalue()

    assert (await tasks("get", task_id))[0] == 1  # 401: no key
    code, text = await tasks("--token", TOKENS["shop"], "get", task_id)
    assert code == 0 and task_id in text
    assert (await tasks("--token", TOKENS["bank"], "get", task_id))[0] == 1  # not theirs: 404
