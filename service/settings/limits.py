"""The gateway's request limits and slow-client timeouts.

One section of Warren's settings (``warren.service.settings``): code that needs only this
section takes this type, so what it depends on is visible in its signature.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from warren.service.settings.base import CONFIG


class HttpLimitSettings(BaseSettings):
    """What a request may be: line, headers, keep-alive, body time."""

    model_config = CONFIG

    http_max_line_bytes: int = Field(
        8190,
        ge=1024,
        le=65_536,
        description="Longest request line (method, path and query) the gateway reads; longer "
        "is a `400` before any handler runs.",
    )
    http_max_header_bytes: int = Field(
        8190,
        ge=1024,
        le=65_536,
        description="Longest request header name or value; longer is a `400`.",
    )
    http_max_headers: int = Field(
        100, ge=16, le=1000, description="Most headers a request may have; more is a `400`."
    )
    http_keepalive_timeout_seconds: float = Field(
        75.0,
        gt=0,
        description="An idle client connection is closed after this long. It also bounds how "
        "long a client may take to send a request's line and headers (a slow-header client), "
        "counted from the connection's start or its previous response. Behind a proxy, keep it "
        "above the proxy's idle timeout.",
    )
    http_body_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="How long the gateway waits for a whole `POST /v1/tasks` body; slower is a "
        "`408` and the connection is closed.",
    )
