"""Warren's settings, read from ``WARREN_*`` environment variables, in sections.

``Settings`` is built once at an entry point (the CLI, a test fixture) and
passed down; nothing reads the environment anywhere else. It is the union of
the sections (``BrokerSettings``, ``RetrySettings``, ``GatewaySettings``,
``AuthSettings``, ``HttpLimitSettings``, ``ConsumerSettings``,
``TelemetrySettings``): code that needs one section takes that type. Handlers
never see any of it; they get their app's own settings. Field descriptions are
the documentation: the README's configuration table is generated from them
(``warren settings --markdown``) and a test keeps the two equal.
"""

from __future__ import annotations

import json
import os
from typing import Any

from pydantic import Field, SecretStr

from warren.service.settings.auth import AuthSettings
from warren.service.settings.base import CONFIG
from warren.service.settings.broker import NAMESPACE_PATTERN, BrokerSettings
from warren.service.settings.consumer import PREFETCH_PER_SLOT, ConsumerSettings
from warren.service.settings.gateway import GatewaySettings
from warren.service.settings.limits import HttpLimitSettings
from warren.service.settings.retries import RetrySettings
from warren.service.settings.telemetry import TelemetrySettings

__all__ = [
    "NAMESPACE_PATTERN",
    "PREFETCH_PER_SLOT",
    "AuthSettings",
    "BrokerSettings",
    "ConsumerSettings",
    "GatewaySettings",
    "HttpLimitSettings",
    "RetrySettings",
    "Settings",
    "TelemetrySettings",
]


# Bases are listed last section first: pydantic orders fields from the last base on, so the
# settings table reads broker, retries, gateway, clients, limits, consumers, telemetry.
class Settings(
    TelemetrySettings,
    ConsumerSettings,
    HttpLimitSettings,
    AuthSettings,
    GatewaySettings,
    RetrySettings,
    BrokerSettings,
):
    """Everything an operator can set; defaults run on a laptop with a local RabbitMQ."""

    model_config = CONFIG

    app: str | None = Field(
        None,
        description="The app whose task types this process serves: `module[:attribute]` of a "
        "`warren.App` (`--app` on the command line wins). Unset: the built-in `diag.*` only.",
    )

    def child_environment(self, **overrides: Any) -> dict[str, str]:
        """This process's environment with ``WARREN_*`` set so that a child process builds
        these settings (plus ``overrides``): what ``warren dev``-like launchers, benchmarks
        and tests hand to the processes they start.

        Inherited ``WARREN_*`` variables are dropped first: a field that is None here must
        stay unset in the child, not pick up the caller's value.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("WARREN_")}
        values = self.model_copy(update=overrides)
        for name in type(self).model_fields:
            value = getattr(values, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                text = value.get_secret_value()
            elif isinstance(value, tuple | list | dict):
                text = json.dumps(value)
            else:
                text = str(value)
            env[f"WARREN_{name.upper()}"] = text
        return env
