"""``warren queues`` and ``warren dead list | show | replay | discard`` against a real gateway."""

from __future__ import annotations

import asyncio
import io
import json

import pytest

from tests.conftest import StartConsumer
from tests.dead_letters.support import Gateway, all_dead, submit, wait_dead, wait_status
from tests.dead_letters.test_dead_letters import FLAKY_ONCE
from warren.service import dead_cli, queues_cli
from warren.service.cli import parser
from warren.service.ops_cli import guarded


async def cli(gateway: Gateway, *argv: str) -> tuple[int, str]:
    """Run a command in a thread (it blocks; the gateway serves on this loop)."""
    out = io.StringIO()
    args = parser().parse_args(argv)
    run = queues_cli.show if argv[0] == "queues" else dead_cli.run
    code = await asyncio.to_thread(guarded, run, args, str(gateway.make_url("")), out)
    return code, out.getvalue()


async def test_queues_prints_a_row_per_queue(gateway: Gateway) -> None:
    await submit(gateway, {"type": "diag.echo", "payload": {"message": "x"}})
    later = {"type": "diag.echo", "payload": {"message": "y"}, "delay_seconds": 600}
    await submit(gateway, later)
    async with asyncio.timeout(10):  # the delayed task's record is written soon, not now
        while True:
            code, text = await cli(gateway, "queues")
            header, *rows = text.splitlines()
            [diag] = [r.split() for r in rows if r.startswith("diag ")]
            if diag[5] != "0":
                break
    assert code == 0 and header.split()[:4] == ["queue", "ready", "unacked", "consumers"]
    assert header.split()[5] == "scheduled" and diag[5] == "1"
    assert diag[1] == "1"


async def test_list_show_replay_and_discard(
    gateway: Gateway, start_consumer: StartConsumer, capsys: pytest.CaptureFixture[str]
) -> None:
    await start_consumer("diag")
    ids = [await submit(gateway, FLAKY_ONCE) for _ in range(3)]
    await wait_dead(gateway, 3)

    code, text = await cli(gateway, "dead", "list", "--type", "diag.flaky")
    assert code == 0 and {line.split()[0] for line in text.splitlines()[1:]} == set(ids)
    code, text = await cli(gateway, "dead", "show", ids[0])
    assert code == 0 and json.loads(text)["payload"] == {"fail_times": 1}

    code, text = await cli(gateway, "dead", "replay", "--type", "diag.flaky", "--yes")
    assert code == 0 and text == "replayed 3 of 3\n"
    assert "replay: 3/3" in capsys.readouterr().err  # the progress, one line off a terminal
    await wait_status(gateway, ids, "succeeded")
    code, text = await cli(gateway, "dead", "replay", "--type", "diag.flaky", "--yes")
    assert code == 0 and text == "nothing to replay\n"

    dead = await submit(gateway, FLAKY_ONCE)
    await wait_dead(gateway, 1)
    code, text = await cli(gateway, "dead", "discard", dead)  # not a terminal: asks for --yes
    assert code == 1 and len(await all_dead(gateway)) == 1
    code, text = await cli(gateway, "dead", "--json", "discard", dead, "--yes")
    assert code == 0 and json.loads(text) == {"discarded": 1}
    assert await all_dead(gateway) == []
    code, _ = await cli(gateway, "dead", "show", dead)
    assert code == 1
