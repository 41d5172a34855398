"""The example app's task contracts: payload models and contracts, no handler code.

The gateway imports this module alone (``warren gateway --app examples.demo.tasks``),
so it needs neither SMTP nor Pillow; the consumers also import the modules named
in ``app.handlers``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, Field

import warren
from examples.demo.settings import ConsumerSettings

EMAIL_ADDRESS = r"^[^@\s<>,;]{1,64}@[^@\s<>,;]{1,255}$"


class EmailPayload(warren.Payload):
    to: list[Annotated[str, Field(pattern=EMAIL_ADDRESS)]] = Field(min_length=1, max_length=50)
    subject: str = Field(max_length=998, pattern=r"^[^\r\n]*$")
    text: str = Field(max_length=1_000_000)


class WebhookPayload(warren.Payload):
    url: AnyHttpUrl
    event: str = Field(max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")
    data: dict[str, Any] = Field(default_factory=dict)


class ThumbnailPayload(warren.Payload):
    source: str = Field(
        max_length=2048,
        description="http(s) URL, or a path relative to the media root.",
    )
    width: int = Field(128, ge=1, le=4096)
    height: int = Field(128, ge=1, le=4096)
    format: Literal["png", "jpeg", "webp"] = "png"


email_send = warren.TaskContract(
    "email.send",
    "email",
    EmailPayload,
    "Sends a plain-text email over SMTP.",
    max_attempts=8,
    timeout_seconds=60,
)
webhook_deliver = warren.TaskContract(
    "webhook.deliver",
    "webhooks",
    WebhookPayload,
    "POSTs a signed JSON event (HMAC-SHA256) to a URL.",
    max_attempts=10,
    timeout_seconds=30,
    backoff=warren.Backoff(base_seconds=5, max_seconds=3600),
)
media_thumbnail = warren.TaskContract(
    "media.thumbnail",
    "media",
    ThumbnailPayload,
    "Writes a thumbnail of an image.",
    max_attempts=3,
    timeout_seconds=60,
)

# Fired by `warren scheduler` (and `warren dev`): a heartbeat through the whole pipeline, so a
# deployment shows its scheduler at work (GET /v1/schedules, `warren schedules`).
heartbeat = warren.Schedule("demo.heartbeat", "diag.echo", {"message": "still here"}, every=300)

app = warren.App(
    contracts=[email_send, webhook_deliver, media_thumbnail],
    schedules=[heartbeat],
    handlers=[
        "examples.demo.handlers.email",
        "examples.demo.handlers.webhook",
        "examples.demo.handlers.media",
    ],
    settings=ConsumerSettings,
)
