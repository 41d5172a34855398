"""``warren tasks``: follow tasks through the gateway's API — get, list, watch, cancel.

It talks HTTP only (``--url``, default the configured gateway address), so it
works against any replica and needs neither the broker nor the store.
Output is readable tables; ``--json`` prints the API's JSON instead. Exit
status: 0 done (``watch``: the task succeeded), 1 the API said no (not
found, conflict; ``watch``: the task ended dead or cancelled), 2 the gateway
could not be reached. Times are UTC. The API key's token comes from ``--token`` or
``WARREN_API_TOKEN`` (a client's variable, not a gateway setting).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, TextIO

import aiohttp
import orjson

from warren.service.store.model import Status

Record = dict[str, Any]


class ApiError(Exception):
    """The gateway answered with a problem (4xx/5xx)."""

    def __init__(self, status: int, problem: Record) -> None:
        detail = problem.get("detail") or problem.get("title") or f"HTTP {status}"
        super().__init__(f"{status} {problem.get('code', '')}: {detail}".strip())
        self.status = status


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    t = sub.add_parser("tasks", help="get, list, watch or cancel tasks through the gateway's API")
    t.add_argument("--url", help="gateway base URL (default: http://WARREN_HTTP_HOST:PORT)")
    t.add_argument("--json", action="store_true", help="print the API's JSON")
    t.add_argument(
        "--token",
        default=os.environ.get("WARREN_API_TOKEN"),
        help="API key token sent as Bearer (default: $WARREN_API_TOKEN)",
    )
    actions = t.add_subparsers(dest="action", required=True)
    get = actions.add_parser("get", help="one task, with its attempts")
    get.add_argument("id")
    get.add_argument("--wait", type=float, default=0, help="wait up to S seconds for its end")
    ls = actions.add_parser("list", help="tasks, newest first")
    ls.add_argument("--status", help="e.g. dead, or running,retrying")
    ls.add_argument("--type")
    ls.add_argument("--queue")
    ls.add_argument("--since", help="ISO 8601 time with offset")
    ls.add_argument("--limit", type=int, default=20)
    ls.add_argument("--cursor", help="next_cursor of an earlier page")
    watch = actions.add_parser("watch", help="print each state change until the task ends")
    watch.add_argument("id")
    cancel = actions.add_parser("cancel", help="cancel a task that has not finished")
    cancel.add_argument("id")
    t.set_defaults(func=cmd_tasks)


def cmd_tasks(args: argparse.Namespace) -> int:
    from warren.service.settings import Settings

    settings = Settings()
    base = args.url or f"http://{settings.http_host}:{settings.http_port}"
    return asyncio.run(run(args, base, sys.stdout))


async def run(args: argparse.Namespace, base: str, out: TextIO) -> int:
    """The command against ``base``; prints to ``out``, errors to stderr; the exit status."""
    commands = {"get": _get, "list": _list, "watch": _watch, "cancel": _cancel}
    try:
        headers = {"Authorization": f"Bearer {args.token}"} if args.token else None
        async with aiohttp.ClientSession(base.rstrip("/"), headers=headers) as http:
            return await commands[args.action](http, args, out)
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except aiohttp.ClientConnectionError as exc:
        print(f"error: cannot reach the gateway at {base}: {exc}", file=sys.stderr)
        return 2


async def _call(http: aiohttp.ClientSession, method: str, path: str, **kw: Any) -> Record:
    async with http.request(method, path, **kw) as response:
        body = orjson.loads(await response.read() or b"{}")
        if response.status >= 400:
            raise ApiError(response.status, body)
        result: Record = body
        return result


async def _get(http: aiohttp.ClientSession, args: argparse.Namespace, out: TextIO) -> int:
    params = {"wait": str(args.wait)} if args.wait else {}
    record = await _call(http, "GET", f"/v1/tasks/{args.id}", params=params)
    out.write(_dumps(record) if args.json else describe(record))
    return 0


async def _list(http: aiohttp.ClientSession, args: argparse.Namespace, out: TextIO) -> int:
    names = ("status", "type", "queue", "since", "limit", "cursor")
    params = {n: str(getattr(args, n)) for n in names if getattr(args, n) not in (None, "")}
    page = await _call(http, "GET", "/v1/tasks", params=params)
    if args.json:
        out.write(_dumps(page))
        return 0
    rows = [_list_row(r) for r in page["items"]]
    out.write(table(["ID", "TYPE", "QUEUE", "STATUS", "ATTEMPT", "CREATED", "FINISHED"], rows))
    if page.get("next_cursor"):
        out.write(f"\nmore: --cursor {page['next_cursor']}\n")
    return 0


def _list_row(record: Record) -> list[str]:
    return [
        record["id"],
        record["type"],
        record["queue"],
        record["status"],
        _attempts(record),
        _when(record["created_at"]),
        _when(record["finished_at"]),
    ]


async def _watch(http: aiohttp.ClientSession, args: argparse.Namespace, out: TextIO) -> int:
    last: Record = {}
    async for record in events(http, f"/v1/tasks/{args.id}/events"):
        last = record
        out.write(_dumps(record) if args.json else change_line(record))
        out.flush()
    return 0 if last.get("status") == Status.SUCCEEDED else 1


async def _cancel(http: aiohttp.ClientSession, args: argparse.Namespace, out: TextIO) -> int:
    record = await _call(http, "DELETE", f"/v1/tasks/{args.id}")
    if args.json:
        out.write(_dumps(record))
    elif record["status"] == Status.CANCELLED:
        out.write(f"{record['id']} is cancelled\n")
    else:
        out.write(f"cancellation of {record['id']} requested (now {record['status']})\n")
    return 0


async def events(http: aiohttp.ClientSession, path: str) -> AsyncIterator[Record]:
    """The ``data`` of each Server-Sent Event of ``path`` until the server ends the stream."""
    async with http.get(path, headers={"Accept": "text/event-stream"}) as response:
        if response.status >= 400:
            raise ApiError(response.status, orjson.loads(await response.read() or b"{}"))
        data: list[bytes] = []
        async for raw in response.content:
            line = raw.rstrip(b"\r\n")
            if line.startswith(b"data:"):
                data.append(line[5:].lstrip())
            elif not line and data:
                yield orjson.loads(b"\n".join(data))
                data = []


# --- formatting ---------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = [headers, *rows]
    return "".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() + "\n"
        for line in lines
    )


def describe(record: Record) -> str:
    """One task: its fields, then its attempts."""
    status = record["status"]
    if record.get("cancel_requested_at") and status != Status.CANCELLED:
        status += " (cancel requested)"
    fields = [
        ("id", record["id"]),
        ("type", f"{record['type']} (queue {record['queue']})"),
        ("status", status),
        ("attempt", _attempts(record)),
        ("created", _when(record["created_at"])),
        ("started", _when(record["started_at"])),
        ("finished", _when(record["finished_at"])),
        ("trace", record.get("trace_url") or record.get("trace_id") or "-"),
    ]
    if record.get("result") is not None:
        fields.append(("result", _short(orjson.dumps(record["result"]).decode())))
    if record.get("error_type") or record.get("error"):
        fields.append(("last error", _error(record)))
    if record.get("reason"):
        fields.append(("reason", record["reason"]))
    text = "".join(f"{name:<11} {value}\n" for name, value in fields)
    attempts = record.get("attempts") or []
    if attempts:
        headers = ["#", "STARTED", "FINISHED", "OUTCOME", "ERROR"]
        text += "\n" + table(headers, [_attempt_row(a) for a in attempts])
    return text


def _attempt_row(attempt: Record) -> list[str]:
    return [
        str(attempt["attempt"]),
        _when(attempt["started_at"]),
        _when(attempt["finished_at"]),
        attempt["outcome"] or "running",
        _error(attempt),
    ]


def _error(item: Record) -> str:
    if not (item.get("error_type") or item.get("error")):
        return ""
    return _short(f"{item.get('error_type') or 'error'}: {item.get('error') or ''}")


def change_line(record: Record) -> str:
    """One line per state change for ``watch``: when, status, attempt, and what it means."""
    status = record["status"]
    if status == Status.SUCCEEDED:
        detail = _short(orjson.dumps(record.get("result")).decode())
    elif status == Status.RETRYING:
        attempts = record.get("attempts") or [{}]
        delay = attempts[-1].get("next_delay_seconds")
        detail = _error(record) + (f" (next attempt in {delay:g}s)" if delay else "")
    elif status in (Status.DEAD, Status.CANCELLED):
        detail = " ".join(filter(None, [record.get("reason"), _error(record)]))
    else:
        detail = "cancel requested" if record.get("cancel_requested_at") else ""
    when = _when(record["updated_at"])
    return f"{when}  {status:<10} attempt {_attempts(record):<6} {detail}".rstrip() + "\n"


def _attempts(record: Record) -> str:
    return f"{record['attempt']}/{record['max_attempts']}"


def _when(value: str | None) -> str:
    if not value:
        return "-"
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _dumps(body: Any) -> str:
    return orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n"
