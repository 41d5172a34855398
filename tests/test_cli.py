"""The ``warren`` command as a person types it: options where they put them, help on every
option, ``topology delete`` on a real namespace, and no secret ever printed."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
from asyncio.subprocess import PIPE
from collections.abc import Iterator

import aiormq
import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from tests.processes import settings_env
from warren.service import topology
from warren.service.cli import parser
from warren.service.dev import laptop_environment
from warren.service.settings import Settings
from warren.service.supervisor import Prefixer


def run_parse(line: str) -> argparse.Namespace:
    return parser().parse_args(line.split())


@pytest.mark.parametrize(
    "line",
    [
        "tasks list --json --url http://gw:1",
        "tasks --json --url http://gw:1 list",
        "tasks --url http://gw:1 list --json",
    ],
)
def test_tasks_options_before_or_after_the_action(line: str) -> None:
    args = run_parse(line)
    assert (args.action, args.json, args.url) == ("list", True, "http://gw:1")


@pytest.mark.parametrize(
    "line", ["dead list --json --url http://gw:1", "dead --json --url http://gw:1 list"]
)
def test_dead_letter_options_before_or_after_the_action(line: str) -> None:
    args = run_parse(line)
    assert (args.action, args.json, args.url) == ("list", True, "http://gw:1")


def test_an_option_after_the_action_does_not_reset_one_before_it() -> None:
    args = run_parse("tasks --json --token t1 get abc")
    assert (args.json, args.token, args.id) == (True, "t1", "abc")
    assert run_parse("tasks list").json is False


@pytest.mark.parametrize(
    "line",
    [
        "--app m dev",
        "dev --app m",
        "--app x topology export --app m",
        "--app m keys new --id a --scopes read",
        "keys new --app m --id a --scopes read",
    ],
)
def test_app_before_or_after_the_command(line: str) -> None:
    assert run_parse(line).app == "m"


def _parsers(p: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield p.prog, p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _parsers(child)


def test_every_command_and_option_has_help() -> None:
    missing = [
        f"{prog} {action.option_strings or action.dest}"
        for prog, p in _parsers(parser())
        for action in p._actions
        if action.help is None
    ]
    assert missing == []


def test_top_level_help_is_plain_text() -> None:
    text = parser().format_help()
    assert "``" not in text and "WARREN_*" in text


async def warren(env: dict[str, str], *argv: str, stdin: bytes = b"") -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "warren", *argv, env=env, stdin=PIPE, stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


async def exists(connection: AbstractRobustConnection, queue: str) -> bool:
    """Asked on a channel of its own: a passive declare of a missing queue closes it."""
    channel = await connection.channel()
    underlay = await channel.get_underlay_channel()
    try:
        await underlay.queue_declare(queue, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return False
    await channel.close()
    return True


async def test_topology_delete_asks_then_removes_the_namespace(
    settings: Settings, connection: AbstractRobustConnection, channel: AbstractChannel
) -> None:
    """``channel`` deletes the namespace at teardown, should the test fail midway."""
    env = settings_env(settings)
    code, text = await warren(env, "topology", "apply")
    assert code == 0, text
    work_queue = topology.Names(settings.namespace).work_queue("diag")
    # Without a terminal to say yes on, nothing is deleted.
    code, text = await warren(env, "topology", "delete", stdin=b"y\n")
    assert code == 1 and "not deleted" in text
    assert await exists(connection, work_queue)
    code, text = await warren(env, "topology", "delete", "--yes")
    assert code == 0 and f"of namespace {settings.namespace}" in text, text
    assert not await exists(connection, work_queue)


def test_settings_mask_every_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = [{"id": "shop", "token_sha256": "a" * 64, "scopes": ["tasks:submit"]}]
    monkeypatch.setenv("WARREN_BROKER_URL", "amqp://shop:broker-pw@rabbit:5672/")
    monkeypatch.setenv("WARREN_STORE_URL", "postgresql://shop:store-pw@pg/warren")
    monkeypatch.setenv("WARREN_API_KEYS", json.dumps(keys))
    monkeypatch.setenv("WARREN_OTEL_ENDPOINT", "https://otel:otel-pw@collector:4318")
    monkeypatch.setenv("DEMO_WEBHOOK_SIGNING_SECRET", "signing-pw")
    from warren.service.cli import main

    assert main(["settings", "--app", "examples.demo.tasks"]) == 0
    text = capsys.readouterr().out
    for secret in ("broker-pw", "store-pw", "otel-pw", "a" * 64, "signing-pw"):
        assert secret not in text
    shown = json.loads(text)
    assert shown["warren"]["broker_url"] == "amqp://shop:********@rabbit:5672/"
    assert shown["warren"]["store_url"] == "postgresql://shop:********@pg/warren"
    assert shown["warren"]["api_keys"][0]["id"] == "shop"
    assert shown["app"]["webhook_signing_secret"] == "********"


def test_dev_gives_its_children_alaptop_environment() -> None:
    """Text logs on a terminal only, and never over a format asked for; private networks
    allowed unless set; the dev mark."""
    settings = Settings(app="m")
    on_terminal: dict[str, str] = {}
    laptop_environment(settings, on_terminal, terminal=True)
    assert on_terminal == {
        "WARREN_APP": "m",
        "WARREN_LOG_FORMAT": "text",
        "WARREN_OUTBOUND_ALLOW_PRIVATE_NETWORKS": "true",
        "WARREN_DEV": "1",
    }
    piped = {"WARREN_OUTBOUND_ALLOW_PRIVATE_NETWORKS": "false"}
    laptop_environment(settings, piped, terminal=False)
    assert "WARREN_LOG_FORMAT" not in piped  # JSON, the default
    assert piped["WARREN_OUTBOUND_ALLOW_PRIVATE_NETWORKS"] == "false"
    asked = {"WARREN_LOG_FORMAT": "json"}
    laptop_environment(settings, asked, terminal=True)
    assert asked["WARREN_LOG_FORMAT"] == "json"


def test_prefixed_lines_off_a_terminal_are_plain() -> None:
    out = io.StringIO()
    Prefixer(out).say("gateway", "one\ntwo\n")
    assert out.getvalue() == "gateway  | one\ngateway  | two\n"
