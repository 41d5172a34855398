"""``warren keys new``: make an API key — the token for the client, the entry for the gateway.

The token is printed once and stored nowhere: the gateway is configured with
the entry, which holds only the token's SHA-256. Output: line 1 the token,
line 2 the entry as JSON (add it to the ``WARREN_API_KEYS`` list or to the
file ``WARREN_API_KEYS_FILE`` names); the explanation goes to stderr, so
``warren keys new … | head -1`` is the token alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from pydantic import ValidationError

from warren.service.apps import load_app
from warren.service.http.auth import SCOPES, ApiKey, hash_token, new_token
from warren.service.settings import Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    k = sub.add_parser("keys", help="make API keys for the gateway")
    actions = k.add_subparsers(dest="action", required=True, metavar="ACTION", help="new")
    new = actions.add_parser("new", help="a new key: prints its token once, and its entry")
    new.add_argument("--id", required=True, help="the client's name (letters, digits, . and -)")
    new.add_argument("--scopes", required=True, help=f"comma-separated, of {', '.join(SCOPES)}")
    new.add_argument("--types", help="task types it may submit, comma-separated (default: all)")
    new.add_argument("--rate", type=float, help="its requests/s (overrides the setting)")
    new.add_argument("--burst", type=int, help="its burst (overrides the setting)")
    new.add_argument(
        "--app",
        default=argparse.SUPPRESS,  # so that `warren --app m keys new` keeps m
        help="the app whose task types --types names (default: WARREN_APP)",
    )
    k.set_defaults(func=cmd_keys)


def cmd_keys(args: argparse.Namespace) -> int:
    return new_key(args, sys.stdout, sys.stderr)


def new_key(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    types = _split(args.types) if args.types else None
    known = load_app(getattr(args, "app", None) or Settings().app).catalog
    if types is not None and (unknown := set(types) - set(known)):
        print(f"error: unknown task types {sorted(unknown)}; known: {sorted(known)}", file=err)
        return 2
    token = new_token(args.id)
    try:
        key = ApiKey(
            id=args.id,
            token_sha256=hash_token(token),
            scopes=frozenset(_split(args.scopes)),
            types=frozenset(types) if types is not None else None,
            rate_limit_per_second=args.rate,
            rate_limit_burst=args.burst,
        )
    except ValidationError as exc:
        for error in exc.errors(include_input=False):
            print(f"error: {'.'.join(map(str, error['loc']))}: {error['msg']}", file=err)
        return 2
    print(token, file=out)
    print(json.dumps(entry(key)), file=out)
    print(
        "The first line is the token: give it to the client now, it is not kept anywhere.\n"
        "The second is the gateway's entry: add it to the WARREN_API_KEYS list.",
        file=err,
    )
    return 0


def entry(key: ApiKey) -> dict[str, Any]:
    """The key as configured: lists sorted, unset options left out."""
    body = key.model_dump(mode="json", exclude_none=True)
    for name in ("scopes", "types"):
        if name in body:
            body[name] = sorted(body[name])
    return body


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]
