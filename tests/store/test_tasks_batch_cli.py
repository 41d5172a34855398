"""``warren tasks submit --batch FILE`` against a real gateway: each task's outcome in the
file's order, exit status 0 only when every task was accepted."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.store.support import Client
from tests.store.test_tasks_cli import tasks


async def test_a_batch_file_prints_each_outcome_in_order(
    gateway: Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        {"type": "diag.echo", "payload": {"message": "a"}, "idempotency_key": "b1"},
        {"type": "diag.echo", "payload": {"message": 3}},
        {"type": "diag.sleep", "payload": {"ms": 1}, "priority": 3},
    ]
    jsonl = tmp_path / "tasks.jsonl"
    jsonl.write_text("\n".join(orjson.dumps(line).decode() for line in lines) + "\n")
    code, text = await tasks(gateway, "submit", "--batch", str(jsonl))
    rows = text.splitlines()
    assert code == 1 and len(rows) == 3
    assert rows[0].split()[:2] == ["1", "accepted"] and "diag.echo" in rows[0]
    assert rows[1].split()[:2] == ["2", "refused"] and "422 validation-failed" in rows[1]
    assert rows[2].split()[:2] == ["3", "accepted"]
    assert "1 of 3 tasks refused" in capsys.readouterr().err

    batch = tmp_path / "batch.json"
    batch.write_bytes(orjson.dumps({"tasks": [lines[0]]}))
    code, text = await tasks(gateway, "--json", "submit", "--batch", str(batch))
    answer = orjson.loads(text)
    assert code == 0 and answer[0]["replayed"] is True
    assert answer[0]["id"] == rows[0].split()[2]


async def test_a_wrong_batch_file_or_command_line_is_exit_2(
    gateway: Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[{"payload": {}}]')
    assert (await tasks(gateway, "submit", "--batch", str(bad)))[0] == 2
    assert "task 1 is not an object with a type" in capsys.readouterr().err
    assert (await tasks(gateway, "submit", "--batch", str(tmp_path / "missing.json")))[0] == 2
    assert (await tasks(gateway, "submit"))[0] == 2
    assert "give a task type, or --batch FILE" in capsys.readouterr().err
