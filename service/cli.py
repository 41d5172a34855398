"""The ``warren`` command: gateway, consumers, the dev supervisor, topology and settings tools.

Settings are built here, once, from ``WARREN_*`` variables plus the command's
flags, and passed down. Consumer code is imported only by the commands that
run consumers, so the gateway never loads a handler.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from warren.service import dead_cli, keys_cli, loops, queues_cli, tasks_cli, topology
from warren.service.apps import App, load_app
from warren.service.connections import connect
from warren.service.errors import ConfigurationError
from warren.service.logs import setup_logging
from warren.service.refusals import (
    EXIT_REFUSED,
    REFUSALS,
    OneLineParser,
    explain,
    store_refusal,
)
from warren.service.settings import Settings
from warren.service.supervisor import run_until_signal
from warren.service.telemetry import shutdown_telemetry

log = logging.getLogger("warren")
APP_HELP = "the app: module[:attribute] holding a warren.App (default: WARREN_APP; none: diag.*)"


async def serve_gateway(settings: Settings, warren_app: App) -> None:
    """Serve until SIGTERM or SIGINT, with or without the broker (it links up in the
    background); a signal during start-up stops at once, a broker refusing us for good
    stops the gateway with that error."""
    from warren.service.http.app import create_app
    from warren.service.http.keys import BROKER

    app = create_app(settings, warren_app.catalog)
    runner = web.AppRunner(app, access_log=None)
    try:
        await run_until_signal(_start_site(runner, settings), "the gateway", app[BROKER].failed)
    finally:
        await runner.cleanup()  # also closes the broker connection (the app's cleanup_ctx)
        log.info("gateway stopped")


async def _start_site(runner: web.AppRunner, settings: Settings) -> None:
    try:
        await runner.setup()
    except Exception as exc:
        if (refused := store_refusal(exc, settings.store_url)) is not None:
            raise refused from None
        raise
    # Several workers bind the one port; the kernel spreads connections (http.workers).
    reuse_port = settings.http_workers > 1 or None
    host, port = settings.http_host, settings.http_port
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port)
    try:
        await site.start()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}): set WARREN_HTTP_PORT "
            "(--port) to a free port, or WARREN_HTTP_HOST (--host) to an address of this host"
        ) from None
    log.info("gateway listening on http://%s:%d", host, port)


def app_settings(args: argparse.Namespace, **overrides: Any) -> tuple[Settings, App]:
    """The settings (``--app`` beats ``WARREN_APP``, and is handed on to child processes
    through the settings) and the app they name: contracts only, never handler code."""
    if getattr(args, "app", None):
        overrides["app"] = args.app
    settings = Settings(**{k: v for k, v in overrides.items() if v})
    return settings, load_app(settings.app)


def cmd_gateway(args: argparse.Namespace) -> int:
    settings, app = app_settings(args, http_host=args.host, http_port=args.port)
    if settings.http_workers > 1 and args.worker is None:
        from warren.service.http.workers import supervise

        return supervise(settings)  # starts `gateway --worker N` processes
    try:
        loops.run(serve_gateway(settings, app))
    finally:
        shutdown_telemetry()
    return 0


def cmd_consume(args: argparse.Namespace) -> int:
    from warren.consumers.loader import registry_of
    from warren.consumers.runner import run

    settings, app = app_settings(args)
    if args.queue not in app.catalog.queues:
        raise ConfigurationError(
            f"no task type uses queue {args.queue!r}; the app's queues: "
            f"{', '.join(app.catalog.queues)}"
        )
    registry = registry_of(app)  # handler code: imported by consumers only
    try:
        loops.run(
            run(settings, app.catalog, registry, args.queue, args.concurrency, args.health_port)
        )
    finally:
        shutdown_telemetry()
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    from warren.service.dev import run_dev

    settings, app = app_settings(args)
    return run_dev(settings, app, args.port)


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


def cmd_topology(args: argparse.Namespace) -> int:
    settings, app = app_settings(args)
    shape = topology.build(settings, app.catalog.queues)
    if args.action == "export":
        print(json.dumps(shape.to_definitions(args.vhost), indent=2))
    elif args.action == "permissions":
        _permissions(args, shape.names, app.catalog.queues)
    else:
        loops.run(_apply(settings, app.catalog.queues))
        print(
            f"declared {len(shape.exchanges)} exchanges, {len(shape.queues)} queues, "
            f"{len(shape.bindings)} bindings under {settings.namespace}."
        )
    return 0


def settings_markdown() -> str:
    """The README's configuration table, generated from the settings model."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = (
            ""
            if default is None
            else ("(secret)" if "secret" in name else json.dumps(default, default=str))
        )
        rows.append(f"| `WARREN_{name.upper()}` | `{shown}` | {field.description} |")
    return "\n".join(rows)


def cmd_settings(args: argparse.Namespace) -> int:
    print(settings_markdown() if args.markdown else Settings().model_dump_json(indent=2))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Benchmarks live in ``warren.service.bench``, imported only when asked for."""
    from warren.service.bench import main as bench_main

    return bench_main(args.bench_args)


def parser() -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = OneLineParser(prog="warren", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("gateway", help="run the HTTP gateway")
    g.add_argument("--host")
    g.add_argument("--port", type=int)
    g.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # set by the supervisor
    g.set_defaults(func=cmd_gateway)
    c = sub.add_parser("consume", help="run a consumer of one queue")
    c.add_argument("--queue", required=True, help="the queue to consume (one of the app's)")
    c.add_argument("--concurrency", type=int)
    c.add_argument("--health-port", type=int, help="port of /healthz, /readyz, /metrics; 0 = off")
    c.set_defaults(func=cmd_consume)
    d = sub.add_parser("dev", help="gateway + one consumer per queue, for a laptop")
    d.add_argument("--port", type=int)
    d.set_defaults(func=cmd_dev)
    t = sub.add_parser("topology", help="declare or export exchanges, queues and bindings")
    t.add_argument("action", choices=["apply", "export", "permissions"])
    t.add_argument("--vhost", default="/", help="vhost written into exported definitions")
    t.add_argument("--role", choices=["gateway", "consumer", "deploy"], default="deploy")
    t.add_argument("--queue", action="append", help="permissions: a consumer's queue (repeat)")
    t.add_argument("--user", help="permissions: the broker user (default <namespace>-<role>)")
    t.add_argument("--format", choices=["rabbitmqctl", "json"], default="rabbitmqctl")
    t.set_defaults(func=cmd_topology)
    for needs_app in (g, c, d, t):
        needs_app.add_argument("--app", help=APP_HELP)
    tasks_cli.add_parser(sub)  # `warren tasks submit|get|list|watch|cancel`, over the HTTP API
    keys_cli.add_parser(sub)  # `warren keys new`: an API key's token and its entry
    queues_cli.add_parser(sub)  # `warren queues [--watch S]`, over the HTTP API
    dead_cli.add_parser(sub)  # `warren dead list|show|replay|discard`, over the HTTP API
    b = sub.add_parser("bench", help="benchmarks: consumer | gateway | e2e (MODE --help)")
    b.add_argument("bench_args", nargs=argparse.REMAINDER, metavar="MODE ...")
    b.set_defaults(func=cmd_bench)
    s = sub.add_parser("settings", help="print the effective settings")
    s.add_argument("--markdown", action="store_true", help="the README's configuration table")
    s.set_defaults(func=cmd_settings)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; a start-up failure the user can fix is one line on stderr, exit 2."""
    args = parser().parse_args(argv)
    try:
        if args.command != "settings":
            setup_logging(Settings(), args.command)
        result: int = args.func(args)
    except REFUSALS as exc:
        print(f"warren {args.command}: {explain(exc)}", file=sys.stderr, flush=True)
        return EXIT_REFUSED
    return result


if __name__ == "__main__":
    sys.exit(main())
