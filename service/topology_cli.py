"""``warren topology``: declare, export, print the permissions of, or delete a namespace.

``delete`` is how a namespace is cleaned (a test's, a demo's, one being retired)
without writing Python: it removes the namespace's exchanges and queues, with
the messages in them, so it asks first unless ``--yes`` is given.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from typing import TextIO

from warren.service import loops, topology
from warren.service.connections import connect
from warren.service.settings import Settings
from warren.service.terminal import waiting

Confirm = Callable[[str], bool]


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> argparse.ArgumentParser:
    t = sub.add_parser(
        "topology",
        parents=[common],
        help="declare, export, print permissions for or delete exchanges and queues",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    t.add_argument(
        "action",
        choices=["apply", "export", "permissions", "delete"],
        help="apply: declare on the broker; export: definitions JSON; permissions: what a "
        "role's broker user needs; delete: remove the namespace (asks first)",
    )
    t.add_argument("--vhost", default="/", help="vhost written into exported definitions")
    t.add_argument(
        "--role",
        choices=["gateway", "consumer", "scheduler", "deploy"],
        default="deploy",
        help="permissions: whose permissions (default: deploy)",
    )
    t.add_argument("--queue", action="append", help="permissions: a consumer's queue (repeat)")
    t.add_argument("--user", help="permissions: the broker user (default <namespace>-<role>)")
    t.add_argument(
        "--format",
        choices=["rabbitmqctl", "json"],
        default="rabbitmqctl",
        help="permissions: a rabbitmqctl command line, or definitions JSON",
    )
    t.add_argument("--yes", action="store_true", help="delete: do not ask for confirmation")
    return t


def run(args: argparse.Namespace, settings: Settings, queues: tuple[str, ...]) -> int:
    shape = topology.build(settings, queues)
    if args.action == "export":
        print(json.dumps(shape.to_definitions(args.vhost), indent=2))
    elif args.action == "permissions":
        _permissions(args, shape.names, queues)
    elif args.action == "delete":
        return delete(settings, queues, yes=args.yes, confirm=ask, out=sys.stdout)
    else:
        with waiting(f"declaring the topology of namespace {settings.namespace}"):
            loops.run(_apply(settings, queues))
        print(
            f"declared {len(shape.exchanges)} exchanges, {len(shape.queues)} queues, "
            f"{len(shape.bindings)} bindings under {settings.namespace}."
        )
    return 0


def ask(question: str) -> bool:
    """A yes/no question on the terminal; anything but y/yes (or no terminal) is no."""
    if not sys.stdin.isatty():
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def delete(
    settings: Settings, queues: tuple[str, ...], *, yes: bool, confirm: Confirm, out: TextIO
) -> int:
    """Delete the namespace's exchanges and queues (and their messages) after confirmation.

    Exit status 0 deleted, 1 not confirmed (nothing touched)."""
    shape = topology.build(settings, queues, passive=False)
    what = f"{len(shape.queues)} queues and {len(shape.exchanges)} exchanges"
    question = f"delete {what} of namespace {settings.namespace!r}, with their messages?"
    if not yes and not confirm(question):
        print("not deleted (confirm, or pass --yes)", file=out)
        return 1
    with waiting(f"deleting {what} of namespace {settings.namespace}"):
        loops.run(_delete(settings, shape))
    print(f"deleted {what} of namespace {settings.namespace}.", file=out)
    return 0


async def _delete(settings: Settings, shape: topology.Topology) -> None:
    connection = await connect(settings, "topology", within=settings.connect_timeout_seconds)
    async with connection:
        await topology.delete(await connection.channel(), shape)


async def _apply(settings: Settings, queues: tuple[str, ...]) -> None:
    connection = await connect(settings, "topology", within=settings.connect_timeout_seconds)
    async with connection:
        channel = await connection.channel()
        # Always for real: this is the deploy step that least-privilege users rely on.
        await topology.declare(channel, topology.build(settings, queues, passive=False))


def _permissions(args: argparse.Namespace, names: topology.Names, known: tuple[str, ...]) -> None:
    """``warren topology permissions``: the least a role's broker user needs."""
    queues = args.queue or (known if args.role == "consumer" else [])
    if unknown := set(queues) - set(known):
        raise SystemExit(f"unknown queues: {', '.join(sorted(unknown))}")
    user = args.user or f"{names.namespace}-{args.role}" + (
        f"-{'-'.join(args.queue)}" if args.role == "consumer" and args.queue else ""
    )
    p = topology.permissions(names, args.role, queues)
    if args.format == "json":
        entry = {"user": user, "vhost": args.vhost, **vars(p)}
        print(json.dumps({"permissions": [entry]}, indent=2))
    else:
        quoted = " ".join(shlex.quote(x) for x in (user, p.configure, p.write, p.read))
        print(f"rabbitmqctl set_permissions -p {shlex.quote(args.vhost)} {quoted}")
