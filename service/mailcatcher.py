"""``warren dev``'s mail catcher: an SMTP server on the laptop that prints each mail it gets.

Without it, the example app's ``email.send`` finds nothing listening on
127.0.0.1:1025 and retries for minutes. With it, a mail is accepted at once
and shown in ``warren dev``'s output as one block (sender, recipients,
subject, the first lines of its text), where a developer looks anyway.
It delivers nothing anywhere.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

Show = Callable[[str], None]
PREVIEW_LINES = 6


def describe(sender: str, recipients: list[str], data: bytes) -> str:
    """One readable block: who, to whom, subject, then the start of the text."""
    mail = message_from_bytes(data, policy=policy.default)
    subject = mail.get("Subject", "(no subject)")
    text = ""
    if isinstance(mail, EmailMessage):
        body = mail.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
    lines = text.strip().splitlines()
    preview = [f"  {line}" for line in lines[:PREVIEW_LINES]]
    if len(lines) > PREVIEW_LINES:
        preview.append(f"  … ({len(lines) - PREVIEW_LINES} more lines)")
    head = f"mail from {sender} to {', '.join(recipients)}: {subject}"
    return "\n".join([head, *preview])


class _Handler:
    def __init__(self, show: Show) -> None:
        self.show = show

    async def handle_DATA(  # aiosmtpd calls its hooks by these names
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        self.show(describe(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK (caught by warren dev, delivered nowhere)"


@contextlib.contextmanager
def catching(host: str, port: int, show: Show) -> Iterator[bool]:
    """Catch mails on ``host:port`` meanwhile (in aiosmtpd's own thread). Yields False,
    and catches nothing, when aiosmtpd is missing or the port is taken."""
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        yield False
        return
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's every SMTP command
    controller = Controller(_Handler(show), hostname=host, port=port)
    try:
        controller.start()
    except (OSError, RuntimeError):
        yield False
        return
    try:
        yield True
    finally:
        controller.stop()
