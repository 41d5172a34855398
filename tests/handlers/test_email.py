"""``email.send`` against a real SMTP server (aiosmtpd in its own thread), no mocks.

What a user relies on: the mail arrives as written with a stable Message-ID,
a refusal that cannot change is ``Permanent``, and anything temporary (4xx,
server down) stays retryable.
"""

from __future__ import annotations

import asyncio
import email.policy
import smtplib
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any
from uuid import uuid4

import pytest
from aiosmtpd.controller import Controller

from examples.demo.handlers.email import send
from examples.demo.settings import DemoSettings
from examples.demo.tasks import EmailPayload
from warren.consumers.context import Resources, TaskContext
from warren.service.errors import Permanent

SENDER = "warren@example.test"


class Mailbox:
    """An aiosmtpd handler that keeps every accepted mail and refuses chosen recipients."""

    def __init__(self, refuse: dict[str, str] | None = None, data_reply: str | None = None):
        self.refuse = refuse or {}
        self.data_reply = data_reply
        self.envelopes: list[Any] = []

    async def handle_RCPT(  # aiosmtpd calls its hooks by these names
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # aiosmtpd calls its hooks by these names
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        if self.data_reply is not None:
            return self.data_reply
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        parser = BytesParser(_class=EmailMessage, policy=email.policy.default)
        return [parser.parsebytes(e.original_content) for e in self.envelopes]


def free_port() -> int:
    """A port nothing listens on (right now): for the server and for "server down"."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def smtp_server() -> Iterator[Callable[[Mailbox], int]]:
    """Start a real SMTP server around a ``Mailbox``; returns its port."""
    controllers: list[Controller] = []

    def start(mailbox: Mailbox) -> int:
        controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
        controller.start()
        controllers.append(controller)
        return int(controller.port)

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
async def resources() -> AsyncIterator[Resources]:
    shared = Resources()
    yield shared
    await shared.close()


def make_ctx(resources: Resources, port: int, task_id: str | None = None) -> TaskContext:
    return TaskContext(
        task_id=task_id or uuid4().hex,
        type="email.send",
        queue="email",
        attempt=1,
        max_attempts=3,
        trace_id=None,
        redelivered=False,
        worker="test",
        settings=DemoSettings(
            smtp_host="127.0.0.1", smtp_port=port, smtp_sender=SENDER, smtp_timeout_seconds=5
        ),
        resources=resources,
    )


async def run(payload: EmailPayload, ctx: TaskContext) -> Any:
    """Run the sync handler in a thread, as the consumer does."""
    return await asyncio.to_thread(send.fn, payload, ctx)


PAYLOAD = EmailPayload(
    to=["ada@example.test", "bob@example.test"],
    subject="Grüße from Warren",
    text="Hello Ada,\nyour export is ready.\n",
)


async def test_mail_arrives_as_written(
    smtp_server: Callable[[Mailbox], int], resources: Resources
) -> None:
    mailbox = Mailbox()
    ctx = make_ctx(resources, smtp_server(mailbox))

    result = await run(PAYLOAD, ctx)

    assert result == {"accepted": PAYLOAD.to, "message_id": f"<{ctx.task_id}@warren>"}
    [envelope] = mailbox.envelopes
    assert envelope.mail_from == SENDER
    assert envelope.rcpt_tos == PAYLOAD.to
    [message] = mailbox.messages()
    assert message["From"] == SENDER
    assert message["To"] == "ada@example.test, bob@example.test"
    assert message["Subject"] == "Grüße from Warren"
    assert message["Message-ID"] == f"<{ctx.task_id}@warren>"
    assert message.get_content().replace("\r\n", "\n") == PAYLOAD.text  # CRLF on the wire


async def test_a_retry_sends_the_same_message_id(
    smtp_server: Callable[[Mailbox], int], resources: Resources
) -> None:
    mailbox = Mailbox()
    port = smtp_server(mailbox)
    task_id = uuid4().hex

    for _ in range(2):
        await run(PAYLOAD, make_ctx(resources, port, task_id))

    assert [m["Message-ID"] for m in mailbox.messages()] == [f"<{task_id}@warren>"] * 2


async def test_every_recipient_refused_is_permanent(
    smtp_server: Callable[[Mailbox], int], resources: Resources
) -> None:
    mailbox = Mailbox(refuse={r: "550 5.1.1 no such user" for r in PAYLOAD.to})
    ctx = make_ctx(resources, smtp_server(mailbox))

    with pytest.raises(Permanent, match=r"refused every recipient.*550 5\.1\.1 no such user"):
        await run(PAYLOAD, ctx)
    assert mailbox.envelopes == []


async def test_some_recipients_refused_still_sends_to_the_others(
    smtp_server: Callable[[Mailbox], int], resources: Resources
) -> None:
    mailbox = Mailbox(refuse={"bob@example.test": "550 5.1.1 no such user"})
    ctx = make_ctx(resources, smtp_server(mailbox))

    result = await run(PAYLOAD, ctx)

    assert result["accepted"] == ["ada@example.test"]
    assert result["refused"] == {"bob@example.test": "550 5.1.1 no such user"}
    [envelope] = mailbox.envelopes
    assert envelope.rcpt_tos == ["ada@example.test"]


async def test_temporary_refusal_is_retryable(
    smtp_server: Callable[[Mailbox], int], resources: Resources
) -> None:
    mailbox = Mailbox(refuse={r: "450 4.2.0 greylisted, try later" for r in PAYLOAD.to})
    ctx = make_ctx(resources, smtp_server(mailbox))

    with pytest.raises(smtplib.SMTPRecipientsRefused) as raised:
        await run(PAYLOAD, ctx)
    assert not isinstance(raised.value, Permanent)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("554 5.7.1 rejected as spam", Permanent),
        ("451 4.3.0 local error, try later", smtplib.SMTPDataError),
    ],
)
async def test_data_reply_decides_permanent_or_retry(
    smtp_server: Callable[[Mailbox], int],
    resources: Resources,
    reply: str,
    expected: type[Exception],
) -> None:
    ctx = make_ctx(resources, smtp_server(Mailbox(data_reply=reply)))

    with pytest.raises(expected) as raised:
        await run(PAYLOAD, ctx)
    assert isinstance(raised.value, Permanent) == (expected is Permanent)


async def test_server_down_is_retryable(resources: Resources) -> None:
    ctx = make_ctx(resources, free_port())

    with pytest.raises(OSError) as raised:
        await run(PAYLOAD, ctx)
    assert not isinstance(raised.value, Permanent)
