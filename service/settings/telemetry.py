"""Telemetry: traces, logs and the Jaeger link.

One section of Warren's settings (``warren.service.settings``): code that needs only this
section takes this type, so what it depends on is visible in its signature.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings

from warren.service.settings.base import CONFIG


class TelemetrySettings(BaseSettings):
    """Where traces go and how logs look."""

    model_config = CONFIG

    otel_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP endpoint for traces (e.g. `http://127.0.0.1:4318`); "
        "unset = no export.",
    )
    otel_service_name: str | None = Field(
        None,
        description="`service.name` of exported spans. Default (unset): one per role, "
        "`warren-gateway` and `warren-consumer-<queue>`, with `service.namespace` = "
        "`WARREN_NAMESPACE`.",
    )
    otel_sampling_ratio: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Fraction of new traces sampled (the gateway's head decision; a consumer "
        "follows the `traceparent` flag). Every failed attempt (retried, dead, undecodable) is "
        "traced whatever the ratio: its span is made when it fails. 0.1 keeps tracing within a "
        "few % of a consumer's throughput; 1 traces every task (~20 % of it).",
    )
    log_level: str = Field("INFO", description="Root log level.")
    log_format: Literal["json", "text"] = Field(
        "json", description="`json`: one JSON object per line; `text`: readable in a terminal."
    )
    jaeger_ui_url: str | None = Field(
        None,
        description="Base URL of the Jaeger UI (e.g. `http://127.0.0.1:16686`); task records "
        "then link to their trace.",
    )
