"""``warren tasks``: submit and follow tasks through the gateway's API — submit, get, list,
watch, cancel.

It is a thin shell over ``warren.Client`` (HTTP only: ``--url``, default the
configured gateway address), so it works against any replica and needs neither
the broker nor the store. Output is readable tables; ``--json`` prints the
answers as JSON instead. Exit status: 0 done (``watch`` and ``submit --wait``:
the task succeeded), 1 the API said no (invalid, not found, conflict; ``watch``
and ``submit --wait``: the task ended dead or cancelled, or did not end in
time; ``submit --batch``: a task was refused), 2 the gateway could not be reached
(or the command line or batch file is wrong). Times are UTC. The API key's token
comes from ``--token`` or ``WARREN_API_TOKEN`` (a client's variable, not a
gateway setting).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TextIO

import orjson
from pydantic import BaseModel

from warren.client import Client, ConnectionFailed, ProblemError, RetryPolicy, WaitTimeout
from warren.client._core import MAX_WAIT_SECONDS
from warren.client.models import Attempt, Status, TaskAccepted, TaskRecord
from warren.service.tasks_batch import BatchFileError, submit_batch
from warren.service.terminal import table, waiting

CLI_RETRY = RetryPolicy(attempts=3, budget_seconds=15.0)
"""A person waits less than a program: three tries at most."""


def _shared(defaults: bool) -> argparse.ArgumentParser:
    """``--url``, ``--json``, ``--token``: accepted before the action (``warren tasks --json
    list``) and after it (``warren tasks list --json``). The copy after the action has no
    defaults (SUPPRESS), so it never resets a value given before it."""
    shared = argparse.ArgumentParser(add_help=False)

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    shared.add_argument(
        "--url",
        default=default(None),
        help="gateway base URL (default: http://WARREN_HTTP_HOST:WARREN_HTTP_PORT)",
    )
    shared.add_argument(
        "--json", action="store_true", default=default(False), help="print the answers as JSON"
    )
    shared.add_argument(
        "--token",
        default=default(os.environ.get("WARREN_API_TOKEN")),
        help="API key token sent as Bearer (default: $WARREN_API_TOKEN)",
    )
    return shared


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    t = sub.add_parser(
        "tasks",
        parents=[_shared(defaults=True)],
        help="submit, get, list, watch or cancel tasks through the API",
    )
    after = [_shared(defaults=False)]
    actions = t.add_subparsers(
        dest="action", required=True, metavar="ACTION", help="ACTION --help tells more"
    )
    _add_submit(actions, after)
    get = actions.add_parser("get", parents=after, help="one task, with its attempts")
    get.add_argument("id", help="the task's id")
    get.add_argument(
        "--wait", type=float, default=0, metavar="S", help="wait up to S seconds for its end"
    )
    ls = actions.add_parser("list", parents=after, help="tasks, newest first")
    ls.add_argument("--status", help="e.g. dead, or running,retrying")
    ls.add_argument("--type", help="a task type, e.g. diag.echo")
    ls.add_argument("--queue", help="a queue, e.g. diag")
    ls.add_argument("--since", help="ISO 8601 time with offset")
    ls.add_argument("--limit", type=int, default=20, help="tasks per page (default: 20)")
    ls.add_argument("--cursor", help="next_cursor of an earlier page")
    watch = actions.add_parser(
        "watch", parents=after, help="print each state change until the task ends"
    )
    watch.add_argument("id", help="the task's id")
    cancel = actions.add_parser("cancel", parents=after, help="cancel a task not finished yet")
    cancel.add_argument("id", help="the task's id")
    t.set_defaults(func=cmd_tasks)


def _add_submit(
    actions: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
) -> None:
    submit = actions.add_parser(
        "submit", parents=parents, help="submit a task; with --wait, wait for its end"
    )
    submit.add_argument("type", nargs="?", help="task type, e.g. diag.echo")
    submit.add_argument(
        "--batch",
        metavar="FILE",
        help="submit the tasks of FILE (- for stdin) in one request: a JSON array of "
        'submissions, {"tasks": [...]} or JSON Lines',
    )
    submit.add_argument(
        "--payload", type=_json_object, default={}, metavar="JSON", help="a JSON object"
    )
    submit.add_argument(
        "--wait",
        type=float,
        nargs="?",
        const=math.inf,
        metavar="S",
        help="wait for the task's end (at most S seconds) and print its record",
    )
    submit.add_argument("--idempotency-key", metavar="K", help="resubmitting with K is safe")
    submit.add_argument("--max-attempts", type=int, metavar="N", help="attempts before dead")
    submit.add_argument("--timeout-seconds", type=float, metavar="S", help="of one attempt")
    submit.add_argument("--priority", type=int, metavar="P", help="0 to 9")
    later = submit.add_mutually_exclusive_group()
    later.add_argument(
        "--delay", type=float, dest="delay_seconds", metavar="S", help="run S seconds from now"
    )
    later.add_argument(
        "--run-at", type=_aware_time, metavar="T", help="run at T (RFC 3339, with its offset)"
    )


def _aware_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not an RFC 3339 time") from None
    if value.utcoffset() is None:
        raise argparse.ArgumentTypeError("give the time's offset, e.g. 2030-01-01T09:00:00Z")
    return value


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("the payload is a JSON object: {...}")
    return value


def cmd_tasks(args: argparse.Namespace) -> int:
    from warren.service.settings import Settings

    settings = Settings()
    base = args.url or f"http://{settings.http_host}:{settings.http_port}"
    return execute(args, base, sys.stdout)


async def run(args: argparse.Namespace, base: str, out: TextIO) -> int:
    """``execute`` in a worker thread, for callers on an event loop (such as tests whose
    gateway serves on that same loop): the client blocks, the loop must not."""
    return await asyncio.to_thread(execute, args, base, out)


Command = Callable[[Client, argparse.Namespace, TextIO], int]


def execute(args: argparse.Namespace, base: str, out: TextIO) -> int:
    """The command against ``base``; prints to ``out``, errors to stderr; the exit status."""
    try:
        with Client(base, token=args.token, retry=CLI_RETRY) as client:
            return COMMANDS[args.action](client, args, out)
    except ProblemError as exc:
        print(f"error: {exc}", file=sys.stderr)
        for error in exc.errors:
            where = ".".join(str(part) for part in error.get("loc", []))
            print(f"  {where or '(body)'}: {error.get('msg')}", file=sys.stderr)
        return 1
    except WaitTimeout as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ConnectionFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _submit(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    if (args.type is None) == (args.batch is None):
        print("error: give a task type, or --batch FILE", file=sys.stderr)
        return 2
    if args.batch is not None:
        try:
            return submit_batch(client, args.batch, args.json, out)
        except (OSError, BatchFileError) as exc:
            print(f"error: {args.batch}: {exc}", file=sys.stderr)
            return 2
    names = (
        "max_attempts",
        "timeout_seconds",
        "priority",
        "idempotency_key",
        "delay_seconds",
        "run_at",
    )
    options = {n: getattr(args, n) for n in names}
    if args.wait is None:
        accepted = client.submit(args.type, args.payload, **options)
        out.write(_dumps(accepted) if args.json else describe_accepted(accepted))
        return 0
    # Submit and wait in one request for the first minute at most, then long-poll the rest.
    wait, started = max(0.0, args.wait), time.monotonic()
    with waiting(f"waiting for the end of a {args.type} task"):
        answer = client.submit(args.type, args.payload, wait=min(wait, MAX_WAIT_SECONDS), **options)
        if isinstance(answer, TaskRecord):
            record = answer
        else:
            left = None if math.isinf(wait) else max(0.0, wait - (time.monotonic() - started))
            record = client.wait(answer.id, timeout=left)
    out.write(_dumps(record) if args.json else describe(record, out.isatty()))
    return 0 if record.status is Status.SUCCEEDED else 1


def _get(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    try:
        if args.wait:
            with waiting(f"waiting for {args.id} to end"):
                record = client.wait(args.id, timeout=args.wait)
        else:
            record = client.get(args.id)
    except WaitTimeout as exc:  # not final yet: show where it is
        record = exc.record
    out.write(_dumps(record) if args.json else describe(record, out.isatty()))
    return 0


def _list(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    names = ("status", "type", "queue", "since", "limit", "cursor")
    page = client.list_page(**{n: getattr(args, n) for n in names})
    if args.json:
        out.write(_dumps(page))
        return 0
    rows = [_list_row(r) for r in page.items]
    headers = ["ID", "TYPE", "QUEUE", "STATUS", "ATTEMPT", "CREATED", "FINISHED"]
    out.write(table(headers, rows, out.isatty()))
    if page.next_cursor:
        out.write(f"\nmore: --cursor {page.next_cursor}\n")
    return 0


def _list_row(r: TaskRecord) -> list[str]:
    times = [_when(r.created_at), _when(r.finished_at)]
    return [r.id, r.type, r.queue, r.status, _attempts(r), *times]


def _watch(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    last: TaskRecord | None = None
    for record in client.events(args.id):
        last = record
        out.write(_dumps(record) if args.json else change_line(record))
        out.flush()
    return 0 if last is not None and last.status is Status.SUCCEEDED else 1


def _cancel(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    record = client.cancel(args.id)
    if args.json:
        out.write(_dumps(record))
    elif record.status is Status.CANCELLED:
        out.write(f"{record.id} is cancelled\n")
    else:
        out.write(f"cancellation of {record.id} requested (now {record.status})\n")
    return 0


COMMANDS: dict[str, Command] = {
    "submit": _submit,
    "get": _get,
    "list": _list,
    "watch": _watch,
    "cancel": _cancel,
}


# --- formatting ---------------------------------------------------------------------


def _fields(fields: Sequence[tuple[str, str]]) -> str:
    return "".join(f"{name:<11} {value}\n" for name, value in fields)


def describe_accepted(accepted: TaskAccepted) -> str:
    """A submission's answer: the new task (or, replayed, the one the key named before)."""
    status = accepted.status.value
    if accepted.replayed:
        status += " (submitted before with this idempotency key)"
    return _fields(
        [
            ("id", accepted.id),
            ("type", f"{accepted.type} (queue {accepted.queue})"),
            ("status", status),
            ("created", _when(accepted.created_at)),
            *([("due", _when(accepted.due_at))] if accepted.due_at else []),
            ("trace", accepted.trace_id or "-"),
        ]
    )


def describe(record: TaskRecord, terminal: bool = False) -> str:
    """One task: its fields, then its attempts."""
    status = record.status.value
    if record.cancel_requested_at and status != Status.CANCELLED:
        status += " (cancel requested)"
    fields = [
        ("id", record.id),
        ("type", f"{record.type} (queue {record.queue})"),
        ("status", status),
        ("attempt", _attempts(record)),
        ("created", _when(record.created_at)),
        ("started", _when(record.started_at)),
        ("finished", _when(record.finished_at)),
        ("trace", record.trace_url or record.trace_id or "-"),
    ]
    if record.result is not None:
        fields.append(("result", _short(orjson.dumps(record.result).decode())))
    if record.error_type or record.error:
        fields.append(("last error", _error(record)))
    if record.reason:
        fields.append(("reason", record.reason))
    text = _fields(fields)
    if record.attempts:
        headers = ["#", "STARTED", "FINISHED", "OUTCOME", "ERROR"]
        text += "\n" + table(headers, [_attempt_row(a) for a in record.attempts], terminal)
    return text


def _attempt_row(attempt: Attempt) -> list[str]:
    return [
        str(attempt.attempt),
        _when(attempt.started_at),
        _when(attempt.finished_at),
        attempt.outcome or "running",
        _error(attempt),
    ]


def _error(item: TaskRecord | Attempt) -> str:
    if not (item.error_type or item.error):
        return ""
    return _short(f"{item.error_type or 'error'}: {item.error or ''}")


def change_line(record: TaskRecord) -> str:
    """One line per state change for ``watch``: when, status, attempt, and what it means."""
    status = record.status
    if status is Status.SUCCEEDED:
        detail = _short(orjson.dumps(record.result).decode())
    elif status is Status.RETRYING:
        delay = record.attempts[-1].next_delay_seconds if record.attempts else None
        detail = _error(record) + (f" (next attempt in {delay:g}s)" if delay else "")
    elif status in (Status.DEAD, Status.CANCELLED):
        detail = " ".join(filter(None, [record.reason, _error(record)]))
    else:
        detail = "cancel requested" if record.cancel_requested_at else ""
    when = _when(record.updated_at)
    return f"{when}  {status:<10} attempt {_attempts(record):<6} {detail}".rstrip() + "\n"


def _attempts(record: TaskRecord) -> str:
    return f"{record.attempt}/{record.max_attempts}"


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _dumps(body: BaseModel) -> str:
    return body.model_dump_json(indent=2) + "\n"
