"""``warren scheduler`` (fire the app's schedules) and ``warren schedules`` (show them)."""

from __future__ import annotations

import argparse
import logging

from warren.service import loops
from warren.service.apps import App, load_app
from warren.service.errors import ConfigurationError
from warren.service.settings import Settings
from warren.service.supervisor import run_until_signal
from warren.service.telemetry import shutdown_telemetry

log = logging.getLogger("warren")


def _app_settings(args: argparse.Namespace) -> tuple[Settings, App]:
    """``--app`` beats ``WARREN_APP``, as for every command that takes an app."""
    settings = Settings(app=args.app) if getattr(args, "app", None) else Settings()
    return settings, load_app(settings.app)


async def serve_scheduler(settings: Settings, app: App, health_port: int = 0) -> None:
    """Fire the app's schedules (leading or standing by) until SIGTERM or SIGINT; with a
    ``health_port``, serve ``/healthz``, ``/readyz`` and ``/metrics`` there, as a consumer
    does (started first: while the broker is away, alive but not ready)."""
    from warren.consumers.health import HealthServer
    from warren.service.scheduler import Scheduler

    scheduler = Scheduler(settings, app)
    health = HealthServer(lambda: scheduler.ready, settings.http_host, health_port)
    try:
        if health_port:
            await health.start()
        await run_until_signal(scheduler.start(), "the scheduler", scheduler.failed)
    finally:
        await scheduler.stop()
        await health.stop()
        log.info("scheduler stopped")


def cmd_scheduler(args: argparse.Namespace) -> int:
    settings, app = _app_settings(args)
    if not app.schedules:
        raise ConfigurationError(f"app {settings.app or '(built-in)'} declares no schedules")
    try:
        port = settings.health_port if args.health_port is None else args.health_port
        loops.run(serve_scheduler(settings, app, port))
    finally:
        shutdown_telemetry()
    return 0


def cmd_schedules(args: argparse.Namespace) -> int:
    from warren.service.schedules_cli import show_schedules

    settings, app = _app_settings(args)
    return loops.run(show_schedules(settings, app))


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    r = sub.add_parser(
        "scheduler", parents=[common], help="fire the app's schedules (one leader among replicas)"
    )
    r.add_argument(
        "--health-port",
        type=int,
        metavar="P",
        help="serve /healthz, /readyz and /metrics on port P (on WARREN_HTTP_HOST; 0: none; "
        "default: WARREN_HEALTH_PORT)",
    )
    r.set_defaults(func=cmd_scheduler)
    w = sub.add_parser(
        "schedules", parents=[common], help="the app's schedules with their last and next tick"
    )
    w.set_defaults(func=cmd_schedules)
