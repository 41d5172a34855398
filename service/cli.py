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
import signal
import subprocess
import sys
import time
from collections.abc import Coroutine, Sequence
from typing import Any

from aiohttp import web

from service import topology
from service.amqp import connect
from service.settings import Settings
from service.tasks import CATALOG

log = logging.getLogger("warren")


def _run(coro: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed (the ``uvloop`` extra), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


async def serve_gateway(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT; a signal during start-up (connecting) stops at once."""
    from service.http.app import create_app

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    runner = web.AppRunner(create_app(settings), access_log=None)
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
    site = web.TCPSite(runner, settings.http_host, settings.http_port)
    await site.start()
    log.info("gateway listening on http://%s:%d", settings.http_host, settings.http_port)


def cmd_gateway(args: argparse.Namespace) -> int:
    overrides = {k: v for k, v in (("http_host", args.host), ("http_port", args.port)) if v}
    _run(serve_gateway(Settings(**overrides)))
    return 0


def cmd_consume(args: argparse.Namespace) -> int:
    from consumers.handlers import REGISTRY
    from consumers.runner import run

    _run(run(Settings(), CATALOG, REGISTRY, args.queue, args.concurrency))
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    """Gateway and one consumer per known queue, as child processes; Ctrl-C stops them all.

    Exits 0 only when stopped by a signal and every child then stopped cleanly;
    a child that exits on its own (e.g. a consumer with a missing handler) stops
    the others and makes the exit status 1. Children that outlive their grace
    are killed, so the supervisor itself never hangs.
    """
    me = [sys.executable, "-m", "service.cli"]
    commands = [[*me, "gateway", *(["--port", str(args.port)] if args.port else [])]]
    commands += [[*me, "consume", "--queue", q] for q in CATALOG.queues]
    children = _Children(stop_timeout=Settings().consumer_grace_seconds + 10)
    # Handlers first: a signal while children are being started must still stop them all.
    previous = {
        sig: signal.signal(sig, children.on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        return children.supervise(commands)
    finally:
        children.kill_leftovers()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Children:
    """The child processes of ``warren dev``; each gets SIGTERM at most once."""

    def __init__(self, stop_timeout: float) -> None:
        self.stop_timeout = stop_timeout
        self.processes: list[subprocess.Popen[bytes]] = []
        self.signalled = False
        # Signalled once each: a second SIGTERM may arrive after a child's event loop has
        # closed and restored the default action, and kill a child that stopped cleanly.
        self._asked: set[int] = set()

    def on_signal(self, signum: int, _frame: object) -> None:
        self.signalled = True
        self.stop()

    def stop(self) -> None:
        for child in self.processes:
            if child.poll() is None and child.pid not in self._asked:
                self._asked.add(child.pid)
                child.send_signal(signal.SIGTERM)

    def supervise(self, commands: list[list[str]]) -> int:
        for command in commands:
            if self.signalled:
                break
            self.processes.append(subprocess.Popen(command))
        while not self.signalled and all(c.poll() is None for c in self.processes):
            time.sleep(0.2)
        failed = [c for c in self.processes if c.poll() is not None and c.pid not in self._asked]
        for child in failed:
            log.error("%s exited with %s; stopping the others", _describe(child), child.returncode)
        self.stop()
        codes = [self._wait_or_kill(c) for c in self.processes]
        # A child that got SIGTERM before installing its handler was still starting and held
        # no work: dying of that signal is a clean stop too.
        clean = all(code in (0, -signal.SIGTERM) for code in codes)
        return 0 if self.signalled and not failed and clean else 1

    def _wait_or_kill(self, child: subprocess.Popen[bytes]) -> int:
        try:
            return child.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            log.error("%s did not stop within %ss; killing it", _describe(child), self.stop_timeout)
            child.kill()
            return child.wait()

    def kill_leftovers(self) -> None:
        """Only reached with live children if supervising raised: never leave orphans."""
        for child in self.processes:
            if child.poll() is None:
                child.kill()
                child.wait()


def _describe(child: subprocess.Popen[bytes]) -> str:
    args = child.args
    return " ".join(map(str, args[-3:])) if isinstance(args, list) else str(args)


async def _apply(settings: Settings) -> None:
    connection = await connect(settings, "topology")
    async with connection:
        channel = await connection.channel()
        await topology.declare(channel, topology.build(settings, CATALOG.queues))


def cmd_topology(args: argparse.Namespace) -> int:
    settings = Settings()
    shape = topology.build(settings, CATALOG.queues)
    if args.action == "export":
        print(json.dumps(shape.to_definitions(args.vhost), indent=2))
    else:
        _run(_apply(settings))
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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="warren", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("gateway", help="run the HTTP gateway")
    g.add_argument("--host")
    g.add_argument("--port", type=int)
    g.set_defaults(func=cmd_gateway)
    c = sub.add_parser("consume", help="run a consumer of one queue")
    c.add_argument("--queue", required=True, choices=CATALOG.queues)
    c.add_argument("--concurrency", type=int)
    c.set_defaults(func=cmd_consume)
    d = sub.add_parser("dev", help="gateway + one consumer per queue, for a laptop")
    d.add_argument("--port", type=int)
    d.set_defaults(func=cmd_dev)
    t = sub.add_parser("topology", help="declare or export exchanges, queues and bindings")
    t.add_argument("action", choices=["apply", "export"])
    t.add_argument("--vhost", default="/", help="vhost written into exported definitions")
    t.set_defaults(func=cmd_topology)
    s = sub.add_parser("settings", help="print the effective settings")
    s.add_argument("--markdown", action="store_true", help="the README's configuration table")
    s.set_defaults(func=cmd_settings)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command != "settings":
        logging.basicConfig(
            level=Settings().log_level,
            format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s",
        )
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
