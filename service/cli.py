"""The ``warren`` command: gateway, consumers, the dev supervisor, topology and settings tools.

Settings are built here, once, from ``WARREN_*`` variables plus the command's
flags, and passed down. Consumer code is imported only by the commands that
run consumers, so the gateway never loads a handler.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import shlex
import signal
import sys
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from warren.service import keys_cli, loops, tasks_cli, topology
from warren.service.amqp import connect
from warren.service.apps import App, load_app
from warren.service.errors import ConfigurationError
from warren.service.logs import setup_logging
from warren.service.settings import Settings
from warren.service.telemetry import shutdown_telemetry

log = logging.getLogger("warren")
APP_HELP = "the app: module[:attribute] holding a warren.App (default: WARREN_APP; none: diag.*)"


async def serve_gateway(settings: Settings, app: App) -> None:
    """Serve until SIGTERM or SIGINT; a signal during start-up (connecting) stops at once."""
    from warren.service.http.app import create_app

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    runner = web.AppRunner(create_app(settings, app.catalog), access_log=None)
    starting = asyncio.ensure_future(_start_site(runner, settings))
    signalled = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait((starting, signalled), return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # a failed start-up (broker, port in use) raises here
            await signalled
        else:
            log.info("signal received during start-up: not serving")
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
    finally:
        signalled.cancel()
        await runner.cleanup()  # also closes the broker connection (the app's cleanup_ctx)
        log.info("gateway stopped")


async def _start_site(runner: web.AppRunner, settings: Settings) -> None:
    await runner.setup()
    # Several workers bind the one port; the kernel spreads connections (http.workers).
    reuse_port = settings.http_workers > 1 or None
    site = web.TCPSite(runner, settings.http_host, settings.http_port, reuse_port=reuse_port)
    await site.start()
    log.info("gateway listening on http://%s:%d", settings.http_host, settings.http_port)


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

        return asyncio.run(supervise(settings))  # starts `gateway --worker N` processes
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
    connection = await connect(settings, "topology")
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
    p = argparse.ArgumentParser(prog="warren", description=__doc__)
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
    b = sub.add_parser("bench", help="benchmarks: consumer | gateway | e2e (MODE --help)")
    b.add_argument("bench_args", nargs=argparse.REMAINDER, metavar="MODE ...")
    b.set_defaults(func=cmd_bench)
    s = sub.add_parser("settings", help="print the effective settings")
    s.add_argument("--markdown", action="store_true", help="the README's configuration table")
    s.set_defaults(func=cmd_settings)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command != "settings":
        setup_logging(Settings(), args.command)
    try:
        result: int = args.func(args)
    except ConfigurationError as exc:  # something the user set: one line, not a traceback
        print(f"warren {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
