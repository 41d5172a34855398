"""``warren queues [--watch S]``: each queue's depths, dead letters and rates, as a table."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

import httpx

from warren.service.ops_cli import add_connection_options, base_url, call, guarded, table

DEPTHS = ("ready", "unacked", "consumers", "retrying", "scheduled", "dead")
HEADERS: tuple[str, ...] = ("queue", *DEPTHS, "pub/s", "del/s", "ack/s")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    q = sub.add_parser("queues", help="queue depths, dead letters and rates (GET /v1/queues)")
    add_connection_options(q)
    q.add_argument("--watch", type=float, metavar="S", help="refresh every S seconds (Ctrl-C)")
    q.set_defaults(func=cmd_queues)


def cmd_queues(args: argparse.Namespace) -> int:
    return guarded(show, args, base_url(args), sys.stdout)


def show(http: httpx.Client, args: argparse.Namespace, out: TextIO) -> int:
    while True:
        body = call(http, "GET", "/v1/queues")
        if args.json:
            out.write(json.dumps(body) + "\n")
        else:
            if args.watch:
                out.write("\x1b[H\x1b[2J")  # clear the screen: the table redrawn in place
            out.write(table(HEADERS, [_row(q) for q in body["queues"]], out))
        out.flush()
        if not args.watch:
            return 0
        try:
            time.sleep(args.watch)
        except KeyboardInterrupt:
            return 0


def _row(q: dict[str, Any]) -> list[str]:
    rates = q["rates"]
    cells = [q["ready"], q["unacked"], q["consumers"], q["retrying"], q["scheduled"]]
    return [
        q["name"],
        *("-" if c is None else str(c) for c in cells),
        str(q["dead_letters"]),
        *(f"{rates[k]:.2f}" for k in ("publish", "deliver", "ack")),
    ]
