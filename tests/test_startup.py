"""Start-up refuses what cannot work, in one line; topology is idempotent; the README documents
the code."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sys
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import Any

import pytest
from aio_pika.abc import AbstractChannel
from pydantic import BaseModel

from tests.conftest import BROKER_URL, make_settings
from tests.demo import CATALOG, REGISTRY
from tests.processes import settings_env
from tests.support import queue_counts
from warren.consumers.registry import Registry, handles
from warren.consumers.runner import Consumer
from warren.service import topology
from warren.service.cli import main
from warren.service.contracts import TaskContract
from warren.service.errors import ConfigurationError
from warren.service.settings import Settings
from warren.service.settings_cli import settings_markdown

README = Path(__file__).resolve().parent.parent / "README.md"


class Nothing(BaseModel):
    pass


orphan = TaskContract("test.orphan", "test", Nothing)
slow = TaskContract("test.slow", "test", Nothing, timeout_seconds=60, timeout_cap_seconds=1800)


def test_consumer_refuses_a_queue_with_a_task_type_without_handler(settings: Settings) -> None:
    with pytest.raises(ConfigurationError, match=r"no handler for test\.orphan"):
        Consumer(settings, CATALOG.extended([orphan]), REGISTRY, "test")


def test_consumer_refuses_an_unknown_queue(settings: Settings) -> None:
    with pytest.raises(ConfigurationError, match="no task type uses queue"):
        Consumer(settings, CATALOG, REGISTRY, "nope")


def test_consumer_refuses_a_timeout_not_below_the_broker_consumer_timeout() -> None:
    @handles(slow)
    async def run_slow(payload: Nothing, ctx: object) -> None:
        return None

    registry = Registry((run_slow,))
    with pytest.raises(ConfigurationError, match="consumer timeout"):
        Consumer(make_settings(), CATALOG.extended([slow]), registry, "test")
    # Raising the broker's timeout (and telling Warren) makes it acceptable.
    settings = make_settings(broker_consumer_timeout_seconds=3600)
    Consumer(settings, CATALOG.extended([slow]), registry, "test")


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
async def test_declaring_twice_is_a_no_op(channel: AbstractChannel, queue_type: str) -> None:
    settings = make_settings(queue_type=queue_type, max_queue_length=1000)
    shape = topology.build(settings, ["diag"])
    try:
        await topology.declare(channel, shape)
        await topology.declare(channel, shape)  # same arguments: no PRECONDITION_FAILED
        for spec in shape.queues:
            assert await queue_counts(channel, spec.name) == (0, 0)
    finally:
        await topology.delete(channel, shape)


def test_every_name_starts_with_the_namespace(settings: Settings) -> None:
    shape = topology.build(settings, CATALOG.queues)
    names = [e.name for e in shape.exchanges] + [q.name for q in shape.queues]
    assert all(n.startswith(settings.namespace + ".") for n in names)
    assert len(names) == len(set(names))
    bound = {b.queue for b in shape.bindings if not b.to_exchange}
    assert bound == {q.name for q in shape.queues}
    exchanges = {e.name for e in shape.exchanges}
    assert all(b.queue in exchanges for b in shape.bindings if b.to_exchange)


def test_topology_export_prints_definitions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["topology", "export", "--app", "examples.demo.tasks"]) == 0
    definitions = json.loads(capsys.readouterr().out)
    shape = topology.build(Settings(), CATALOG.queues)
    assert definitions == shape.to_definitions()


def test_readme_configuration_table_matches_the_settings_model() -> None:
    text = README.read_text()
    found = re.search(r"<!-- settings:start -->\n(.*?)\n<!-- settings:end -->", text, re.S)
    assert found, "README lacks the generated settings table"
    assert found.group(1) == settings_markdown(), "run: warren settings --markdown"


# --- start-up failures a user can cause: one line on stderr, exit code 2 ------------------


async def refusal(settings: Settings, *args: str, **overrides: Any) -> str:
    """Run ``warren ARGS`` (logging errors only) and return its one line on stderr."""
    env = settings_env(settings, log_level="ERROR", **overrides)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "warren", *args, env=env, stdout=PIPE, stderr=PIPE
    )
    try:
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()  # by its PID: it is ours
            await proc.wait()
    lines = err.decode().splitlines()
    assert proc.returncode == 2, err.decode()
    assert len(lines) == 1 and not out, err.decode()
    assert lines[0].startswith(f"warren {args[0]}: "), lines[0]
    return lines[0]


@pytest.mark.usefixtures("channel")  # deletes what the child declared before failing
@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "overrides", "says"),
    [
        (["gateway"], {"http_port": "eighty"}, "invalid setting WARREN_HTTP_PORT"),
        (["consume", "--queue", "diag"], {"retry_tiers_seconds": "[1,"}, "WARREN_RETRY_TIERS"),
        (["gateway"], {"retry_max_seconds": 0.1}, "WARREN_RETRY_MAX_SECONDS must be >="),
        (["gateway"], {"auth_disabled": False}, "no API key is configured: set WARREN_API_KEYS"),
        (["gateway"], {"broker_url": f"{BROKER_URL}nope"}, "vhost (the URL's path) in WARREN_"),
        (["gateway"], {"store_url": "postgresql://127.0.0.1:1/x"}, "check WARREN_STORE_URL"),
        (["consume", "--queue", "nope"], {}, "no task type uses queue 'nope'; the app's queues:"),
        (
            ["consume", "--queue", "webhooks"],
            {"DEMO_WEBHOOK_SIGNING_SECRET": "change-me"},
            "DEMO_WEBHOOK_SIGNING_SECRET is the known default 'change-me'",
        ),
        (["consume", "--queue", "diag"], {"broker_consumer_timeout_seconds": 10}, "WARREN_BROKER_"),
    ],
)
async def test_a_start_up_failure_is_one_line_naming_the_setting(
    settings: Settings, args: list[str], overrides: dict[str, Any], says: str
) -> None:
    assert says in await refusal(settings, *args, **overrides)


@pytest.mark.usefixtures("channel")  # deletes what the child declared before failing
@pytest.mark.slow
@pytest.mark.parametrize("args", [["gateway"], ["consume", "--queue", "diag"]])
async def test_a_broker_refusing_the_user_is_one_line(settings: Settings, args: list[str]) -> None:
    wrong = BROKER_URL.replace("guest:guest@", "guest:wrong@")
    line = await refusal(settings, *args, broker_url=wrong)
    assert "refused user 'guest'" in line
    assert line.endswith("check the user and password in WARREN_BROKER_URL")
    assert "wrong" not in line  # never the password


@pytest.mark.usefixtures("channel")  # deletes what the child declared before failing
@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "setting"),
    [
        (["gateway", "--port"], "WARREN_HTTP_PORT"),
        (["consume", "--queue", "diag", "--health-port"], "WARREN_HEALTH_PORT"),
    ],
)
async def test_a_port_in_use_is_one_line(settings: Settings, args: list[str], setting: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        line = await refusal(settings, *args, str(port))
    assert f"127.0.0.1:{port}" in line and "address already in use" in line and setting in line
