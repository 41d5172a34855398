"""The ``warren`` command: gateway, consumers, the dev supervisor, topology and settings tools.

Settings are built here, once, from ``WARREN_*`` variables plus the command's
flags, and passed down. Consumer code is imported only by the commands that
run consumers, so the gateway never loads a handler.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from warren.service import (
    dead_cli,
    keys_cli,
    loops,
    queues_cli,
    scheduler_cli,
    tasks_cli,
    topology_cli,
)
from warren.service.apps import App, load_app
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
from warren.service.settings_cli import cmd_settings
from warren.service.supervisor import run_until_signal
from warren.service.telemetry import shutdown_telemetry

log = logging.getLogger("warren")
APP_HELP = "the app: module[:attribute] holding a warren.App (default: WARREN_APP; none: diag.*)"


ACCESS_FORMAT = '%a "%r" %s %bB %Tfs'


async def serve_gateway(settings: Settings, warren_app: App, access_log: bool = False) -> None:
    """Serve until SIGTERM or SIGINT, with or without the broker (it links up in the
    background); a signal during start-up stops at once, a broker refusing us for good
    stops the gateway with that error.

    ``access_log``: a line per request (``warren dev`` asks for it). Off by default: it
    costs the hot path a log record per request, and a deployment has its proxy's."""
    from warren.service.heap import settle_on_startup
    from warren.service.http.app import create_app
    from warren.service.http.keys import BROKER

    app = create_app(settings, warren_app.catalog)
    app.on_startup.append(settle_on_startup)  # a process of its own: its heap, once started
    runner = (
        web.AppRunner(
            app, access_log=logging.getLogger("warren.access"), access_log_format=ACCESS_FORMAT
        )
        if access_log
        else web.AppRunner(app, access_log=None)
    )
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
        loops.run(serve_gateway(settings, app, access_log=args.access_log))
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
    return run_dev(settings, app, args.port, args.mail_port)


def cmd_topology(args: argparse.Namespace) -> int:
    settings, app = app_settings(args)
    return topology_cli.run(args, settings, app.catalog.queues)


def cmd_bench(args: argparse.Namespace) -> int:
    """Benchmarks live in ``warren.service.bench``, imported only when asked for."""
    from warren.service.bench import main as bench_main

    return bench_main(args.bench_args)


DESCRIPTION = """Warren: an asynchronous task pipeline on RabbitMQ.

Run the HTTP gateway, the consumers of an app's queues, or both at once on a
laptop (dev); declare or delete the broker topology; submit and follow tasks;
make API keys. Settings come from WARREN_* variables (see: warren settings).
Options may be given before or after the command's name."""


def _common() -> argparse.ArgumentParser:
    """``--app``, accepted wherever a user types it (``warren --app m dev``, ``warren dev
    --app m``): SUPPRESS keeps a later level from resetting what an earlier one set."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--app", default=argparse.SUPPRESS, help=APP_HELP)
    return common


def parser() -> argparse.ArgumentParser:
    common = _common()
    p: argparse.ArgumentParser = OneLineParser(
        prog="warren",
        description=DESCRIPTION,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="COMMAND --help tells more"
    )
    g = sub.add_parser("gateway", parents=[common], help="run the HTTP gateway")
    g.add_argument("--host", help="address to listen on (default: WARREN_HTTP_HOST)")
    g.add_argument("--port", type=int, help="port to listen on (default: WARREN_HTTP_PORT)")
    g.add_argument(
        "--access-log",
        action="store_true",
        help="log a line per request (warren dev turns it on; off by default for speed)",
    )
    g.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # set by the supervisor
    g.set_defaults(func=cmd_gateway)
    c = sub.add_parser("consume", parents=[common], help="run a consumer of one queue")
    c.add_argument("--queue", required=True, help="the queue to consume (one of the app's)")
    c.add_argument(
        "--concurrency", type=int, help="tasks run at once (default: WARREN_CONSUMER_CONCURRENCY)"
    )
    c.add_argument("--health-port", type=int, help="port of /healthz, /readyz, /metrics; 0 = off")
    c.set_defaults(func=cmd_consume)
    d = sub.add_parser(
        "dev", parents=[common], help="gateway + one consumer per queue, for a laptop"
    )
    d.add_argument("--port", type=int, help="the gateway's port (default: WARREN_HTTP_PORT)")
    d.add_argument(
        "--mail-port",
        type=int,
        default=1025,
        help="port of the mail catcher, where the example app sends mail (0: none; default 1025)",
    )
    d.set_defaults(func=cmd_dev)
    topology_cli.add_parser(sub, common).set_defaults(func=cmd_topology)
    scheduler_cli.add_parser(sub, common)  # `warren scheduler`, `warren schedules`
    tasks_cli.add_parser(sub)  # `warren tasks submit|get|list|watch|cancel`, over the HTTP API
    keys_cli.add_parser(sub)  # `warren keys new`: an API key's token and its entry
    queues_cli.add_parser(sub)  # `warren queues [--watch S]`, over the HTTP API
    dead_cli.add_parser(sub)  # `warren dead list|show|replay|discard`, over the HTTP API
    b = sub.add_parser(
        "bench", help="benchmarks: warren bench consumer|gateway|e2e|soak [--help | options]"
    )
    b.add_argument(
        "bench_args",
        nargs=argparse.REMAINDER,
        metavar="MODE ...",
        help="the benchmark (consumer, gateway, e2e or soak) and its options; MODE --help lists it",
    )
    b.set_defaults(func=cmd_bench)
    s = sub.add_parser(
        "settings", parents=[common], help="print the effective settings, secrets masked"
    )
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
