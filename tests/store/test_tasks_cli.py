"""``warren tasks submit | get | list | watch | cancel`` against a real gateway."""

from __future__ import annotations

import asyncio
import io

import pytest

from tests.conftest import StartConsumer
from tests.store.support import Client, get_task, status_becomes, submit
from warren.service.cli import parser
from warren.service.tasks_cli import run


async def tasks(gateway: Client, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    args = parser().parse_args(["tasks", *argv])
    code = await run(args, str(gateway.make_url("")), out)
    return code, out.getvalue()


async def test_get_shows_the_record_and_its_attempts(
    gateway: Client, start_consumer: StartConsumer
) -> None:
    await start_consumer("diag")
    accepted = await submit(gateway, {"type": "diag.flaky", "payload": {"fail_times": 1}})
    code, text = await tasks(gateway, "get", accepted["id"], "--wait", "10")
    assert code == 0
    assert f"id          {accepted['id']}" in text
    assert "status      succeeded" in text and "attempt     2/5" in text
    assert "retrying" in text and "FlakyError: planned failure 1 of 1" in text
    code, text = await tasks(gateway, "--json", "get", accepted["id"])
    assert code == 0 and '"status": "succeeded"' in text


async def test_list_filters_by_status_in_a_table(
    gateway: Client, start_consumer: StartConsumer
) -> None:
    await start_consumer("diag")
    dead = await submit(gateway, {"type": "diag.fail", "payload": {"permanent": True}})
    ok = await submit(gateway, {"type": "diag.echo", "payload": {"message": "x"}})
    for task in (dead, ok):
        await get_task(gateway, task["id"], wait=10)
    code, text = await tasks(gateway, "list", "--status", "dead")
    header, *rows = text.splitlines()
    assert code == 0 and header.split() == [
        "ID", "TYPE", "QUEUE", "STATUS", "ATTEMPT", "CREATED", "FINISHED"
    ]  # fmt: skip
    assert len(rows) == 1 and rows[0].startswith(dead["id"]) and " dead " in rows[0]


async def test_watch_prints_each_change_until_the_end(
    gateway: Client, start_consumer: StartConsumer
) -> None:
    accepted = await submit(gateway, {"type": "diag.sleep", "payload": {"ms": 200}})
    watching = asyncio.create_task(tasks(gateway, "watch", accepted["id"]))
    await asyncio.sleep(0.2)
    await start_consumer("diag")
    code, text = await asyncio.wait_for(watching, 15)
    statuses = [line.split()[2] for line in text.splitlines()]
    assert code == 0 and statuses[0] == "queued" and statuses[-1] == "succeeded"


async def test_cancel_and_the_errors_a_person_sees(
    gateway: Client, start_consumer: StartConsumer, capsys: pytest.CaptureFixture[str]
) -> None:
    await start_consumer("diag")
    accepted = await submit(gateway, {"type": "diag.sleep", "payload": {"ms": 60_000}})
    await status_becomes(gateway, accepted["id"], "running")
    code, text = await tasks(gateway, "cancel", accepted["id"])
    assert code == 0 and "cancellation of" in text
    code, _ = await tasks(gateway, "watch", accepted["id"])
    assert code == 1  # ended, but not succeeded
    code, _ = await tasks(gateway, "get", "0" * 32)
    assert code == 1 and "404 not-found" in capsys.readouterr().err
    out = io.StringIO()
    args = parser().parse_args(["tasks", "get", "0" * 32])
    assert await run(args, "http://127.0.0.1:9", out) == 2


async def test_submit_and_wait_for_the_end(gateway: Client, start_consumer: StartConsumer) -> None:
    await start_consumer("diag")
    code, text = await tasks(
        gateway, "submit", "diag.echo", "--payload", '{"message": "hi"}', "--wait", "15"
    )
    assert code == 0 and "status      succeeded" in text
    assert 'result      {"message":"hi"}' in text and "attempt     1/5" in text
    code, text = await tasks(
        gateway, "--json", "submit", "diag.fail", "--payload", '{"permanent": true}', "--wait"
    )
    assert code == 1 and '"status": "dead"' in text  # ended, but not succeeded


async def test_submit_with_an_idempotency_key_and_the_refusals_a_person_sees(
    gateway: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    echo = ("submit", "diag.echo", "--payload", '{"message": "hi"}', "--idempotency-key", "k1")
    code, text = await tasks(gateway, *echo)
    assert code == 0 and "status      queued" in text
    code, again = await tasks(gateway, *echo)
    assert code == 0 and again.split()[1] == text.split()[1]  # the same task id
    assert "submitted before with this idempotency key" in again

    code, _ = await tasks(gateway, "submit", "diag.echo", "--payload", '{"message": 3}')
    err = capsys.readouterr().err
    assert code == 1 and "422 validation-failed: payload of diag.echo" in err
    assert "  payload.message: Input should be a valid string" in err
    with pytest.raises(SystemExit) as usage:
        parser().parse_args(["tasks", "submit", "diag.echo", "--payload", "[1]"])
    assert usage.value.code == 2 and "a JSON object" in capsys.readouterr().err


async def test_submit_later_with_delay_or_run_at(
    gateway: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = await tasks(
        gateway, "submit", "diag.echo", "--payload", '{"message": "x"}', "--delay", "90"
    )
    assert code == 0 and "status      scheduled" in text and "due " in text
    task_id = text.split()[1]
    assert (await get_task(gateway, task_id))["status"] == "scheduled"
    code, text = await tasks(
        gateway,
        "submit",
        "diag.echo",
        "--payload",
        '{"message": "x"}',
        "--run-at",
        "2099-01-01T00:00:00Z",
    )
    assert code == 1 and "run_at: at most" in capsys.readouterr().err  # beyond the ladder
    with pytest.raises(SystemExit):  # one way to say when
        parser().parse_args(["tasks", "submit", "diag.echo", "--delay", "1", "--run-at", "x"])
    with pytest.raises(SystemExit):  # a time without its offset is refused before sending
        parser().parse_args(["tasks", "submit", "diag.echo", "--run-at", "2030-01-01T00:00:00"])
    code, _ = await tasks(gateway, "cancel", task_id)
    assert code == 0
