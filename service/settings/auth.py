"""The gateway's clients: API keys and rate limits.

One section of Warren's settings (``warren.service.settings``): code that needs only this
section takes this type, so what it depends on is visible in its signature.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings

from warren.service.settings.base import CONFIG


class AuthSettings(BaseSettings):
    """Who may call the gateway, and how often."""

    model_config = CONFIG

    auth_disabled: bool = Field(
        False,
        description="Serve the API without API keys (a trusted network only): every caller "
        "sees every task and names itself in `X-Warren-Client`. The gateway logs a warning.",
    )
    api_keys: str = Field(
        "[]",
        description='API keys, a JSON list of `{"id", "token_sha256", "scopes", "types"?, '
        '"rate_limit_per_second"?, "rate_limit_burst"?}` (made by `warren keys new`; hashes '
        "only, never tokens). With authentication on, the gateway refuses to start without keys.",
    )
    api_keys_file: Path | None = Field(
        None,
        description="A JSON file with more API keys in the same format (e.g. a mounted "
        "Kubernetes Secret); read by the gateway at start-up.",
    )
    rate_limit_per_second: float = Field(
        0.0,
        ge=0,
        description="Requests per second each client (API key) may make, refilled continuously; "
        "0 = no limit. Over it: `429` with `Retry-After`. Per gateway process.",
    )
    rate_limit_burst: int = Field(
        20, ge=1, description="Requests a client may make at once before its rate applies."
    )
