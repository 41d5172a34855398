"""``warren dev``: the gateway, one consumer per known queue and (with schedules) the
scheduler, as child processes.

For a laptop or a machine that already runs RabbitMQ. Children are real
``warren`` processes, so what runs here is what a deployment runs; they are
started and stopped by ``warren.service.supervisor``. Made for a terminal: the
children's lines come out prefixed by their name (coloured on a terminal), as
text logs on a terminal and JSON otherwise (``WARREN_LOG_FORMAT`` wins), the
gateway logs a line per request, a mail catcher takes what the example app
sends, handlers may call private networks (a local webhook receiver), and a
banner says where everything is.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import MutableMapping

from warren.service.apps import App
from warren.service.http.auth import DEV_KEY, DEV_TOKEN
from warren.service.keys_cli import entry
from warren.service.logs import setup_logging
from warren.service.mailcatcher import catching
from warren.service.settings import Settings
from warren.service.supervisor import Prefixer, Supervisor

DEV_MARK = "WARREN_DEV"
"""Set to 1 in the children's environment: apps may accept laptop-only values under it
(the example app its known webhook secret); never set it in a deployment."""

MAIL_HOST = "127.0.0.1"


def run_dev(settings: Settings, app: App, port: int | None, mail_port: int | None) -> int:
    """Gateway and one consumer per known queue, as child processes; Ctrl-C stops them all.

    Exits 0 only when stopped by a signal and every child then stopped cleanly;
    a child that exits on its own (e.g. a consumer with a missing handler) stops
    the others and makes the exit status 1. Children that outlive their grace
    are killed, so the supervisor itself never hangs. The children serve ``app``
    (``settings.app``, handed on in ``WARREN_APP``). ``mail_port`` 0: no mail catcher.
    """
    out = Prefixer(sys.stdout)
    keyed = _use_dev_key(settings)
    laptop_environment(settings, os.environ, terminal=sys.stdout.isatty())
    _log_through(out)
    commands = _commands(settings, app, port)
    with catching(MAIL_HOST, mail_port or 0, lambda m: out.say("mail", m)) as mail:
        if mail_port and not mail:
            out.say("dev", f"no mail catcher: {MAIL_HOST}:{mail_port} is taken or aiosmtpd absent")
        out.say("dev", banner(settings, app, port, keyed, mail_port if mail else None))
        with Supervisor(grace=settings.consumer_grace_seconds + 10, output=out) as children:
            children.start(commands)
            code = children.wait()
    out.say("dev", "stopped" if code == 0 else "stopped: a process failed (see above)")
    return code


class _Said(logging.Handler):
    """dev's own log lines (a child that failed, one killed after its grace) among the
    children's, prefixed ``dev``."""

    def __init__(self, out: Prefixer, formatter: logging.Formatter | None) -> None:
        super().__init__()
        self.out = out
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        self.out.say("dev", self.format(record))


def _log_through(out: Prefixer) -> None:
    setup_logging(Settings(), "dev")  # the format the children got, too
    root = logging.getLogger()
    root.handlers[:] = [_Said(out, root.handlers[0].formatter)]


def _commands(settings: Settings, app: App, port: int | None) -> dict[str, list[str]]:
    me = [sys.executable, "-m", "warren"]
    gateway = [*me, "gateway", "--access-log", *(["--port", str(port)] if port else [])]
    commands = {"gateway": gateway}
    # One machine, several consumers: each gets its own health port, counting up.
    for i, queue in enumerate(app.catalog.queues):
        health = str(settings.health_port + i if settings.health_port else 0)
        commands[queue] = [*me, "consume", "--queue", queue, "--health-port", health]
    if app.schedules:  # the app's cron schedules; health on the port after the consumers'
        health = str(settings.health_port + len(app.catalog.queues) if settings.health_port else 0)
        commands["scheduler"] = [*me, "scheduler", "--health-port", health]
    return commands


def laptop_environment(settings: Settings, env: MutableMapping[str, str], terminal: bool) -> None:
    """What the children inherit: the app, text logs on a terminal (unless a format was
    asked for), private networks allowed (unless set), the dev mark."""
    if settings.app:
        env["WARREN_APP"] = settings.app
    if terminal:
        env.setdefault("WARREN_LOG_FORMAT", "text")
    env.setdefault("WARREN_OUTBOUND_ALLOW_PRIVATE_NETWORKS", "true")
    env[DEV_MARK] = "1"


def banner(
    settings: Settings, app: App, port: int | None, keyed: bool, mail_port: int | None
) -> str:
    """Where everything is: the API, its documents, the dev key, the consumers, the mails."""
    base = f"http://{settings.http_host}:{port or settings.http_port}"
    lines = [
        f"warren dev: {app_name(settings)}, namespace {settings.namespace}; Ctrl-C stops all",
        f"  API      {base}/v1/tasks  (OpenAPI: {base}/openapi.json)",
        f"  probes   {base}/readyz  {base}/metrics",
    ]
    if keyed:
        lines.append(f"  dev key  Authorization: Bearer {DEV_TOKEN}  (this laptop only)")
        lines.append(f"  CLI      export WARREN_API_TOKEN={DEV_TOKEN}; warren tasks --help")
    if settings.health_port:
        last = settings.health_port + len(app.catalog.queues) - 1
        lines.append(
            f"  queues   health and metrics of each consumer on ports {settings.health_port}-{last}"
        )
    if mail_port:
        lines.append(f"  mail     smtp://{MAIL_HOST}:{mail_port} catches every mail: shown here")
    return "\n".join(lines)


def app_name(settings: Settings) -> str:
    return f"app {settings.app}" if settings.app else "the built-in diag.* tasks"


def _use_dev_key(settings: Settings) -> bool:
    """With authentication on and no key set the gateway would refuse to start: on a laptop,
    the children get the fixed dev-only key, whose token the README's curl sends."""
    configured = settings.api_keys.strip() not in ("", "[]") or settings.api_keys_file
    if settings.auth_disabled or configured:
        return False
    os.environ["WARREN_API_KEYS"] = json.dumps([entry(DEV_KEY)])  # inherited by the children
    return True
