"""What ``warren queues`` and ``warren dead`` share: the gateway's address and key, one HTTP
session, a table and a progress bar.

Like ``warren tasks``, they speak only HTTP to the gateway (any replica), so they need
neither the broker nor the store. Exit status: 0 done, 1 the API said no, 2 the gateway
could not be reached.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import httpx

from warren.service import terminal


class ApiError(Exception):
    """The gateway answered with a problem (its ``detail``, or its title)."""


def add_connection_options(parser: argparse.ArgumentParser, defaults: bool = True) -> None:
    """``--url``, ``--json``, ``--token``. Added again to each action with ``defaults=False``
    (SUPPRESS), so they go before or after the action and a later copy never resets an
    earlier value (``warren dead --json list`` and ``warren dead list --json``)."""

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--url",
        default=default(None),
        help="gateway base URL (default: http://WARREN_HTTP_HOST:PORT)",
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="print the answers as JSON"
    )
    parser.add_argument(
        "--token",
        default=default(os.environ.get("WARREN_API_TOKEN")),
        help="API key token sent as Bearer (default: $WARREN_API_TOKEN)",
    )


def base_url(args: argparse.Namespace) -> str:
    if args.url:
        return str(args.url)
    from warren.service.settings import Settings

    settings = Settings()
    return f"http://{settings.http_host}:{settings.http_port}"


def session(args: argparse.Namespace, base: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    return httpx.Client(base_url=base, headers=headers, timeout=60.0)


def call(http: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    """The JSON answer of one request; ``ApiError`` for a problem."""
    response = http.request(method, path, **kwargs)
    if response.status_code >= 400:
        try:
            problem = response.json()
            text = problem.get("detail") or problem.get("title") or response.reason_phrase
        except ValueError:
            text = response.text[:200]
        raise ApiError(f"{response.status_code}: {text}")
    return response.json()


def guarded(run: Any, args: argparse.Namespace, base: str, out: TextIO) -> int:
    """``run(http, args, out)`` with the CLI's exit statuses."""
    try:
        with session(args, base) as http:
            return int(run(http, args, out))
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except httpx.TransportError as exc:
        print(f"error: cannot reach the gateway at {base}: {exc}", file=sys.stderr)
        return 2


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO) -> str:
    """The rows under their headers, drawn like every other table of the command."""
    return terminal.table(headers, rows, out.isatty())
