"""``warren tasks submit --batch FILE``: many submissions in one request, from a file.

FILE (``-``: standard input) holds submissions as ``POST /v1/tasks`` bodies, each with
an optional ``idempotency_key``: a JSON array, ``{"tasks": [...]}`` (the body of
``POST /v1/tasks/batch``) or JSON Lines, one submission a line. Each task's outcome is
printed in the file's order; the exit status is 0 only if every task was accepted.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import orjson

from warren.client import BatchItem, Client, ProblemError, Submission

FIELDS = ("max_attempts", "timeout_seconds", "priority", "idempotency_key", "delay_seconds")


class BatchFileError(ValueError):
    """The file is not a list of submissions; the message says where."""


def read_submissions(path: str) -> list[Submission]:
    """The submissions of ``path`` (``-``: standard input), in order."""
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    try:
        data: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        data = _json_lines(text)
    if isinstance(data, dict) and isinstance(data.get("tasks"), list):
        data = data["tasks"]
    if not isinstance(data, list) or not data:
        raise BatchFileError('expected a JSON array, {"tasks": [...]} or JSON Lines')
    return [_submission(n, item) for n, item in enumerate(data, 1)]


def _json_lines(text: str) -> list[Any]:
    items = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise BatchFileError(f"line {n} is not JSON: {exc}") from None
    return items


def _submission(n: int, item: Any) -> Submission:
    if not isinstance(item, dict) or not isinstance(item.get("type"), str):
        raise BatchFileError(f"task {n} is not an object with a type")
    if unknown := set(item) - {"type", "payload", "run_at", *FIELDS}:
        raise BatchFileError(f"task {n} has unknown fields: {', '.join(sorted(unknown))}")
    options = {name: item[name] for name in FIELDS if name in item}
    if "run_at" in item:
        options["run_at"] = _time(n, item["run_at"])
    return Submission(item["type"], item.get("payload", {}), **options)


def _time(n: int, text: Any) -> datetime:
    """``run_at`` as the client takes it: a datetime (the file holds its RFC 3339 text)."""
    try:
        return datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise BatchFileError(f"task {n}: run_at is not an RFC 3339 time") from None


def submit_batch(client: Client, path: str, as_json: bool, out: TextIO) -> int:
    """Submit the file's tasks in one request; 0 if all were accepted, else 1."""
    items = client.submit_batch(read_submissions(path))
    if as_json:
        out.write(
            orjson.dumps([_json(item) for item in items], option=orjson.OPT_INDENT_2).decode()
        )
        out.write("\n")
    else:
        for n, item in enumerate(items, 1):
            out.write(f"{n:>5}  {_line(item)}\n")
    refused = sum(isinstance(item, ProblemError) for item in items)
    if refused:
        print(f"{refused} of {len(items)} tasks refused", file=sys.stderr)
    return 1 if refused else 0


def _json(item: BatchItem) -> Any:
    if isinstance(item, ProblemError):
        return {"problem": item.body}
    return item.model_dump(mode="json")


def _line(item: BatchItem) -> str:
    if isinstance(item, ProblemError):
        return f"refused   {item}"
    replayed = " (submitted before with this idempotency key)" if item.replayed else ""
    return f"accepted  {item.id}  {item.type}{replayed}"
