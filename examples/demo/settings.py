"""The example app's own settings, read from ``DEMO_*`` variables.

They belong to the app, not to Warren: consumers of this app build them once and
hand them to its handlers as ``ctx.settings``; Warren's ``WARREN_*`` settings
never reach a handler.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

KNOWN_DEFAULT_SECRET = "change-me"
"""Public (it is in this file): receivers would trust webhooks anyone can sign."""


class DemoSettings(BaseSettings):
    """SMTP relay, webhook signing and the media directory of the example handlers."""

    model_config = SettingsConfigDict(env_prefix="DEMO_", extra="ignore", frozen=True)

    smtp_host: str = Field("127.0.0.1", description="SMTP server for `email.send`.")
    smtp_port: int = Field(1025, ge=1, le=65535, description="SMTP port for `email.send`.")
    smtp_sender: str = Field(
        "warren@localhost", description="Envelope sender address of `email.send`."
    )
    smtp_timeout_seconds: float = Field(10.0, gt=0, description="SMTP connect/command timeout.")
    webhook_signing_secret: SecretStr = Field(
        SecretStr(KNOWN_DEFAULT_SECRET),
        description="HMAC-SHA256 key that signs `webhook.deliver` requests.",
    )
    webhook_timeout_seconds: float = Field(
        10.0, gt=0, description="Timeout of one `webhook.deliver` HTTP request."
    )
    media_root: Path = Field(
        Path("var/media"),
        description="Directory `media.thumbnail` reads local images from and writes "
        "thumbnails to; paths outside it are refused.",
    )
    media_max_source_bytes: int = Field(
        20_000_000, ge=1, description="Largest image `media.thumbnail` downloads or reads."
    )


class ConsumerSettings(DemoSettings):
    """The settings the app's consumers run with: as ``DemoSettings``, but the known default
    webhook secret is refused outside ``warren dev`` (which sets ``WARREN_DEV=1`` for its
    children). A consumer then exits at start-up with one line, exit status 2."""

    @field_validator("webhook_signing_secret")
    @classmethod
    def _not_the_known_default(cls, secret: SecretStr) -> SecretStr:
        if (
            secret.get_secret_value() == KNOWN_DEFAULT_SECRET
            and os.environ.get("WARREN_DEV") != "1"
        ):
            raise ValueError(
                f"DEMO_WEBHOOK_SIGNING_SECRET is the known default {KNOWN_DEFAULT_SECRET!r}, "
                "which anyone can sign webhooks with: set a secret of your own"
            )
        return secret
