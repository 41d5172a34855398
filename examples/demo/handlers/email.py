"""Handler of ``email.send``: one plain-text mail over SMTP, with the stdlib ``smtplib``.

It is deliberately a plain ``def``: ``smtplib`` blocks, and Warren runs sync
handlers in the consumer's thread pool, so this module is also the example of
that path.

Retries are the point of a queue, so the handler sorts SMTP failures into two
kinds. A 5xx reply is the server saying "never" (unknown mailbox, sender or
content refused, a needed extension missing): ``Permanent``, dead-lettered at
once. Anything else — refused or dropped connections, timeouts, 4xx replies
such as greylisting — propagates and is retried. A retried send carries the
same ``Message-ID`` (derived from the task id), so when an attempt did deliver
but its acknowledgement was lost, the duplicate is recognisable downstream.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from typing import Any

from examples.demo.settings import DemoSettings
from examples.demo.tasks import EmailPayload, email_send
from warren import Permanent, TaskContext, handles

PERMANENT_REPLY = 500  # SMTP reply codes 5yz: "permanent negative completion"


def message_id(task_id: str) -> str:
    """The ``Message-ID`` of a task's mail: the same for every attempt of that task."""
    return f"<{task_id}@warren>"


def build_message(payload: EmailPayload, *, sender: str, task_id: str) -> EmailMessage:
    """The mail of ``payload``; the default policy encodes non-ASCII headers and body."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(payload.to)
    message["Subject"] = payload.subject
    message["Message-ID"] = message_id(task_id)
    message.set_content(payload.text)
    return message


@handles(email_send)
def send(payload: EmailPayload, ctx: TaskContext) -> dict[str, Any]:
    """Send the mail; return the accepted recipients (and any refused ones) and its id."""
    settings: DemoSettings = ctx.settings
    message = build_message(payload, sender=settings.smtp_sender, task_id=ctx.task_id)
    try:
        refused = _deliver(
            message,
            sender=settings.smtp_sender,
            recipients=payload.to,
            host=settings.smtp_host,
            port=settings.smtp_port,
            timeout=settings.smtp_timeout_seconds,
        )
    except smtplib.SMTPRecipientsRefused as exc:
        _raise_if_all_permanent(exc.recipients)
        raise  # some refusal was temporary (4xx): the next attempt may get through
    except smtplib.SMTPNotSupportedError as exc:
        raise Permanent(f"the SMTP server lacks a needed extension: {exc}") from exc
    except smtplib.SMTPResponseException as exc:
        if exc.smtp_code >= PERMANENT_REPLY:
            raise Permanent(f"the SMTP server refused the mail: {_reply(exc)}") from exc
        raise
    result: dict[str, Any] = {
        "accepted": [r for r in payload.to if r not in refused],
        "message_id": message["Message-ID"],
    }
    if refused:
        result["refused"] = {r: _reply_text(code, text) for r, (code, text) in refused.items()}
    return result


def _deliver(
    message: EmailMessage,
    *,
    sender: str,
    recipients: list[str],
    host: str,
    port: int,
    timeout: float,
) -> dict[str, tuple[int, bytes]]:
    """One SMTP session; returns the recipients refused while others were accepted."""
    smtp = smtplib.SMTP(host, port, timeout=timeout)
    try:
        return smtp.send_message(message, from_addr=sender, to_addrs=recipients)
    finally:
        _quit_quietly(smtp)


def _quit_quietly(smtp: smtplib.SMTP) -> None:
    """Say QUIT, ignoring its failures: once the DATA was accepted the mail is sent.

    ``SMTP.__exit__`` would raise on an unexpected QUIT reply, which would turn a
    delivered mail into a retry, i.e. a duplicate.
    """
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _raise_if_all_permanent(refusals: dict[str, tuple[int, bytes]]) -> None:
    if refusals and all(code >= PERMANENT_REPLY for code, _ in refusals.values()):
        details = "; ".join(f"{r}: {_reply_text(c, t)}" for r, (c, t) in refusals.items())
        raise Permanent(f"the SMTP server refused every recipient ({details})")


def _reply(exc: smtplib.SMTPResponseException) -> str:
    return _reply_text(exc.smtp_code, exc.smtp_error)


def _reply_text(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {text}".strip()
