"""``warren dead list | show ID | replay | discard``: dead letters through the gateway's API.

``replay`` and ``discard`` take ids or a filter (``--queue``, ``--type``, ``--reason``,
``--since``; at least one, or ``--all``). With a filter the CLI first lists the matching
ids, then sends them in chunks, drawing a progress bar; each chunk is an ids selection, so
an interrupted run is simply run again (done letters are gone; nothing runs twice).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

import httpx

from warren.service import terminal
from warren.service.ops_cli import (
    add_connection_options,
    base_url,
    call,
    guarded,
    table,
)

CHUNK = 200
FILTERS = ("queue", "type", "reason", "since")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    d = sub.add_parser("dead", help="browse, replay or discard dead letters")
    add_connection_options(d)
    actions = d.add_subparsers(
        dest="action", required=True, metavar="ACTION", help="ACTION --help tells more"
    )
    ls = actions.add_parser("list", help="dead letters, newest first")
    _add_filters(ls)
    ls.add_argument("--limit", type=int, default=20, help="dead letters per page (default: 20)")
    ls.add_argument("--cursor", help="next_cursor of an earlier page")
    show = actions.add_parser("show", help="one dead letter with its payload")
    show.add_argument("id", help="the dead task's id")
    for name, verb in (("replay", "re-publish as attempt n+1"), ("discard", "delete for good")):
        act = actions.add_parser(name, help=f"{verb}: ids, or a filter")
        act.add_argument("ids", nargs="*", help="task ids")
        _add_filters(act)
        act.add_argument("--all", action="store_true", help="every dead letter")
        act.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    for action in actions.choices.values():
        add_connection_options(action, defaults=False)
    d.set_defaults(func=cmd_dead)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queue", help="a queue, e.g. email")
    parser.add_argument("--type", help="a task type, e.g. email.send")
    parser.add_argument("--reason", help="e.g. attempts-exhausted, permanent")
    parser.add_argument("--since", help="ISO 8601 time with offset")


def cmd_dead(args: argparse.Namespace) -> int:
    return guarded(run, args, base_url(args), sys.stdout)


def run(http: httpx.Client, args: argparse.Namespace, out: TextIO) -> int:
    if args.action == "list":
        return _list(http, args, out)
    if args.action == "show":
        letter = call(http, "GET", f"/v1/dead-letters/{args.id}")
        out.write(json.dumps(letter, indent=2) + "\n")
        return 0
    return _act(http, args, out)


def _filters(args: argparse.Namespace) -> dict[str, str]:
    return {k: getattr(args, k) for k in FILTERS if getattr(args, k)}


def _list(http: httpx.Client, args: argparse.Namespace, out: TextIO) -> int:
    params: dict[str, Any] = {**_filters(args), "limit": args.limit}
    if args.cursor:
        params["cursor"] = args.cursor
    page = call(http, "GET", "/v1/dead-letters", params=params)
    if args.json:
        out.write(json.dumps(page) + "\n")
        return 0
    headers = ("id", "queue", "type", "reason", "attempts", "dead at", "bytes", "error")
    rows = [
        [
            x["id"],
            x["queue"],
            x["type"] or "-",
            x["reason"] or "-",
            str(x["attempts"] or "-"),
            x["dead_at"][:19],
            str(x["payload_size"]),
            (x["error"] or "")[:40],
        ]
        for x in page["items"]
    ]
    out.write(table(headers, rows, out))
    if page["next_cursor"]:
        out.write(f"more: --cursor {page['next_cursor']}\n")
    return 0


def _act(http: httpx.Client, args: argparse.Namespace, out: TextIO) -> int:
    filters = _filters(args)
    if bool(args.ids) == bool(filters or args.all):
        raise SystemExit(f"{args.action}: give ids, or a filter (or --all), not both")
    ids = list(args.ids) or _matching(http, filters)
    if not ids:
        out.write(f"nothing to {args.action}\n")
        return 0
    if not args.yes and not _confirmed(args.action, len(ids)):
        return 1
    done = 0
    with terminal.progress(args.action, len(ids)) as sent:
        for start in range(0, len(ids), CHUNK):
            answer = call(
                http,
                "POST",
                f"/v1/dead-letters/{args.action}",
                json={"ids": ids[start : start + CHUNK]},
            )
            done += int(answer["replayed" if args.action == "replay" else "discarded"])
            sent(min(start + CHUNK, len(ids)))
    verb = "replayed" if args.action == "replay" else "discarded"
    out.write(json.dumps({verb: done}) + "\n" if args.json else f"{verb} {done} of {len(ids)}\n")
    return 0


def _matching(http: httpx.Client, filters: dict[str, str]) -> list[str]:
    ids: list[str] = []
    params: dict[str, Any] = {**filters, "limit": 500}
    while True:
        page = call(http, "GET", "/v1/dead-letters", params=params)
        ids += [x["id"] for x in page["items"]]
        if not page["next_cursor"]:
            return ids[::-1]  # oldest first: replayed in the order they died
        params["cursor"] = page["next_cursor"]


def _confirmed(action: str, count: int) -> bool:
    if not sys.stdin.isatty():
        print(f"{action} {count} dead letters: add --yes to confirm", file=sys.stderr)
        return False
    return input(f"{action} {count} dead letters? [y/N] ").strip().lower() in ("y", "yes")
