"""The task types Warren ships: ``diag.*`` to smoke-test a deployment, and three real examples.

Only payload models and contracts live here, never handler code: the gateway
imports this module to validate submissions.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from warren.service.contracts import Backoff, Catalog, TaskContract


class Payload(BaseModel):
    """Base of every payload: unknown fields are refused, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- diag: smoke tests -------------------------------------------------------
class EchoPayload(Payload):
    message: str = Field(max_length=10_000)


class SleepPayload(Payload):
    ms: int = Field(ge=0, le=3_600_000)


class FlakyPayload(Payload):
    fail_times: int = Field(ge=0, le=100, description="Attempts that fail before one succeeds.")


class FailPayload(Payload):
    permanent: bool = Field(False, description="Fail without retries.")


# --- realistic examples -----------------------------------------------------
EMAIL_ADDRESS = r"^[^@\s<>,;]{1,64}@[^@\s<>,;]{1,255}$"


class EmailPayload(Payload):
    to: list[Annotated[str, Field(pattern=EMAIL_ADDRESS)]] = Field(min_length=1, max_length=50)
    subject: str = Field(max_length=998, pattern=r"^[^\r\n]*$")
    text: str = Field(max_length=1_000_000)


class WebhookPayload(Payload):
    url: AnyHttpUrl
    event: str = Field(max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")
    data: dict[str, Any] = Field(default_factory=dict)


class ThumbnailPayload(Payload):
    source: str = Field(
        max_length=2048,
        description="http(s) URL, or a path relative to the media root.",
    )
    width: int = Field(128, ge=1, le=4096)
    height: int = Field(128, ge=1, le=4096)
    format: Literal["png", "jpeg", "webp"] = "png"


diag_echo = TaskContract("diag.echo", "diag", EchoPayload, "Returns its message.")
diag_sleep = TaskContract(
    "diag.sleep", "diag", SleepPayload, "Sleeps ms milliseconds.", timeout_cap_seconds=1200
)
diag_flaky = TaskContract(
    "diag.flaky", "diag", FlakyPayload, "Fails its first fail_times attempts, then succeeds."
)
diag_fail = TaskContract(
    "diag.fail",
    "diag",
    FailPayload,
    "Always fails; permanent=true skips the retries.",
    max_attempts=3,
)
email_send = TaskContract(
    "email.send",
    "email",
    EmailPayload,
    "Sends a plain-text email over SMTP.",
    max_attempts=8,
    timeout_seconds=60,
)
webhook_deliver = TaskContract(
    "webhook.deliver",
    "webhooks",
    WebhookPayload,
    "POSTs a signed JSON event (HMAC-SHA256) to a URL.",
    max_attempts=10,
    timeout_seconds=30,
    backoff=Backoff(base_seconds=5, max_seconds=3600),
)
media_thumbnail = TaskContract(
    "media.thumbnail",
    "media",
    ThumbnailPayload,
    "Writes a thumbnail of an image.",
    max_attempts=3,
    timeout_seconds=60,
)

CATALOG = Catalog(
    (diag_echo, diag_sleep, diag_flaky, diag_fail, email_send, webhook_deliver, media_thumbnail)
)
