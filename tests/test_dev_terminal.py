"""``warren dev`` in a terminal, as a person runs it: driven in a pseudo-terminal (pexpect).

What they rely on: a banner saying where the API is and which key to send, text log
lines prefixed by the process that wrote them, a line per request, the mails the
example app sends shown where they look, and Ctrl-C stopping everything, cleanly.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import sys
import time
import urllib.request
from typing import Any

import pexpect
import pytest

from tests.processes import REPO, free_port, settings_env
from warren.service import topology
from warren.service.http.auth import DEV_TOKEN
from warren.service.settings import Settings

pytestmark = pytest.mark.slow

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def call(method: str, url: str, body: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=body, method=method)
    request.add_header("Authorization", f"Bearer {DEV_TOKEN}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        status: int = response.status
        return status


QUEUES = ("diag", "email", "media", "webhooks")


def expect_all(dev: pexpect.spawn[str], patterns: list[str]) -> None:
    """Each pattern once, in whatever order the processes print them."""
    waiting: list[Any] = list(patterns)  # pexpect's stubs want a list of their own union
    while waiting:
        waiting.pop(dev.expect(waiting))


def drive(env: dict[str, str], port: int, mail_port: int) -> tuple[int | None, str, int | None]:
    """Start, read, request, mail, Ctrl-C; the exit status, the whole screen, the pid."""
    dev = pexpect.spawn(
        sys.executable,
        ["-m", "warren", "dev", "--port", str(port), "--mail-port", str(mail_port)],
        env=env,
        cwd=str(REPO),
        encoding="utf-8",
        timeout=40,
        dimensions=(50, 200),
    )
    screen = io.StringIO()
    dev.logfile_read = screen
    try:
        # Given the banner, and every consumer consuming
        dev.expect(r"Bearer " + re.escape(DEV_TOKEN))
        expect_all(dev, [rf"consuming \S+\.{q} " for q in QUEUES] + ["gateway listening"])
        # When a person asks the API for something, and sends a mail through the example app
        base = f"http://127.0.0.1:{port}"
        assert call("GET", f"{base}/v1/task-types") == 200
        dev.expect(r"GET /v1/task-types HTTP/1.1\" 200")
        mail = b'{"type": "email.send", "payload": {"to": ["ada@example.com"], '
        mail += b'"subject": "hello from dev", "text": "first line\\nsecond line"}}'
        assert call("POST", f"{base}/v1/tasks", mail) == 202
        dev.expect(r"mail from warren@localhost to ada@example.com: hello from dev")
        dev.expect(r"second line")
        time.sleep(0.3)
        # Then Ctrl-C stops everything
        dev.sendintr()
        dev.expect(pexpect.EOF, timeout=40)
        dev.close()
        return dev.exitstatus, ANSI.sub("", screen.getvalue()).replace("\r\n", "\n"), dev.pid
    finally:
        if dev.isalive():
            dev.terminate(force=True)  # by its PID: it is ours


async def test_dev_in_a_terminal_shows_banner_prefixed_text_logs_access_and_mail(
    settings: Settings, declared: topology.Declared
) -> None:
    port, mail_port = free_port(), free_port()
    env = settings_env(
        settings, auth_disabled=False, api_keys="[]", http_port=port, DEMO_SMTP_PORT=mail_port
    )
    env.pop("WARREN_LOG_FORMAT")  # on a terminal, text is the default
    env.pop("DEMO_WEBHOOK_SIGNING_SECRET", None)  # the known default is fine under dev
    env.pop("WARREN_OUTBOUND_ALLOW_PRIVATE_NETWORKS")  # dev allows them by itself
    started = time.monotonic()
    code, screen, pid = await asyncio.to_thread(drive, env, port, mail_port)
    assert code == 0, screen
    assert time.monotonic() - started < 60
    lines = screen.splitlines()
    # The banner: the API's address, the dev key to send, where mails go.
    assert f"dev      |   API      http://127.0.0.1:{port}/v1/tasks  (OpenAPI: " in screen
    assert f"dev      |   dev key  Authorization: Bearer {DEV_TOKEN}  (" in screen
    assert f"dev      |   mail     smtp://127.0.0.1:{mail_port} catches" in screen
    # Text log lines, each prefixed by its process; one access line per request.
    time_level = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO +"
    assert any(
        re.fullmatch(rf"webhooks +\| {time_level}warren\.consumers\.runner: consuming .*", x)
        for x in lines
    ), screen
    request = r'"GET /v1/task-types HTTP/1\.1" 200 \d+B [\d.]+s'
    access = rf"gateway +\| {time_level}warren\.access: 127\.0\.0\.1 {request}"
    assert any(re.fullmatch(access, x) for x in lines), screen
    assert "mail     | mail from warren@localhost to ada@example.com: hello from dev" in lines
    # Ctrl-C drained every process.
    assert screen.count("consumer of ") == 4 and "gateway stopped" in screen
    assert lines[-1] == "dev      | stopped", screen
    # Whatever dev started is gone with it: its pseudo-terminal's session is empty.
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
