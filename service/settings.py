"""Warren's one settings model, read from ``WARREN_*`` environment variables.

It is built once at an entry point (the CLI, a test fixture) and passed down;
nothing reads the environment anywhere else. Field descriptions are the
documentation: the README's configuration table is generated from them
(``warren settings --markdown``) and a test keeps the two equal.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

NAMESPACE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
PREFETCH_PER_SLOT = 2  # default prefetch per handler slot (see ``consumer_prefetch``)


class Settings(BaseSettings):
    """Everything an operator can set; defaults run on a laptop with a local RabbitMQ."""

    model_config = SettingsConfigDict(env_prefix="WARREN_", extra="ignore", frozen=True)

    # --- broker ------------------------------------------------------------
    broker_url: str = Field(
        "amqp://guest:guest@127.0.0.1:5672/",
        description="AMQP URL of the RabbitMQ broker (vhost is the URL path).",
    )
    namespace: str = Field(
        "warren",
        pattern=NAMESPACE_PATTERN,
        description="Prefix of every exchange and queue name, so deployments and test runs "
        "never collide.",
    )
    queue_type: Literal["classic", "quorum"] = Field(
        "classic",
        description="Type of work and dead-letter queues: `quorum` for a replicated cluster. "
        "Changing it needs the queues to be recreated.",
    )
    delivery_limit: int = Field(
        20,
        ge=1,
        description="Quorum queues only: deliveries after which the broker itself dead-letters "
        "a message (guards against a message that kills its consumer process).",
    )
    max_queue_length: int | None = Field(
        None,
        ge=1,
        description="If set, work queues refuse publishes beyond this many messages "
        "(`reject-publish`) and the gateway answers 429 (`queue-full`) instead of growing "
        "the queue.",
    )
    connect_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="How long one attempt to connect to the broker may take, and how long "
        "`warren topology apply` keeps retrying. The gateway and consumers keep retrying until "
        "the broker answers (`/readyz` 503 meanwhile).",
    )
    publish_timeout_seconds: float = Field(
        5.0,
        gt=0,
        description="How long a publish may wait for the broker's confirm before it counts as "
        "failed (gateway answers 503).",
    )
    broker_consumer_timeout_seconds: float = Field(
        1800.0,
        gt=0,
        description="The broker's `consumer_timeout`; consumers refuse to start when a task "
        "timeout is not below it.",
    )
    declare_topology: bool = Field(
        True,
        description="Gateway and consumers declare the exchanges, queues and bindings they use "
        "at start-up (needs `configure` permission). `false`: they only check that they exist "
        "(passive declares), for least-privilege broker users; `warren topology apply` or the "
        "definitions create them.",
    )

    # --- retries -----------------------------------------------------------
    retry_tiers_seconds: tuple[float, ...] = Field(
        (1.0, 5.0, 30.0, 120.0, 600.0, 3600.0),
        min_length=1,
        description="Delays of the TTL retry queues, one queue per tier and work queue. "
        "Changing a tier's delay declares a new tier queue.",
    )
    retry_base_seconds: float = Field(
        1.0, gt=0, description="Backoff of the first retry; doubles with each attempt."
    )
    retry_max_seconds: float = Field(3600.0, gt=0, description="Upper bound of the backoff.")
    retry_jitter: float = Field(
        0.2, ge=0, le=1, description="Relative jitter added to each backoff (0.2 = up to +20 %)."
    )

    # --- gateway -----------------------------------------------------------
    http_host: str = Field("127.0.0.1", description="Address the gateway listens on.")
    http_port: int = Field(8080, ge=0, le=65535, description="Port the gateway listens on.")
    http_workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Gateway processes serving the one port (`SO_REUSEPORT`, Linux), supervised "
        "by `warren gateway`: one exiting stops all. More than 1 needs the PostgreSQL store "
        "and a fixed port.",
    )
    max_body_bytes: int = Field(
        262_144, ge=1024, description="Largest accepted `POST /v1/tasks` body, in bytes."
    )
    retry_after_seconds: int = Field(
        5,
        ge=1,
        description="`Retry-After` sent with a 503 or 429 when the broker cannot take a task.",
    )
    store_url: str = Field(
        "sqlite:///var/warren.db",
        description="Where task records are kept: `sqlite:///path` (relative; `sqlite:////abs`) "
        "for one gateway process, or `postgresql://user@host/db` (`?search_path=schema` "
        "optional) shared by several gateway replicas. The schema is created and migrated "
        "at start-up.",
    )
    store_retention_days: float = Field(
        7.0,
        gt=0,
        description="Task records untouched for this long are pruned (checked hourly).",
    )
    recorder_batch_size: int = Field(
        500,
        ge=1,
        le=10_000,
        description="Most lifecycle events the gateway's recorder writes in one transaction; "
        "it holds up to twice this many unacknowledged (its prefetch).",
    )

    # --- gateway: authentication and limits ----------------------------------
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

    # --- gateway: request limits and slow clients ------------------------------
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

    # --- consumers ---------------------------------------------------------
    consumer_concurrency: int = Field(
        16,
        ge=1,
        le=1000,
        description="Handlers one consumer process runs at once.",
    )
    consumer_prefetch: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description="Deliveries one consumer process holds unacknowledged (its prefetch): "
        "those running, those waiting for a handler slot, and those whose outcome awaits "
        "the broker's confirms. Default (unset): twice the concurrency, room for as many "
        "deliveries awaiting confirms as running, while a process holds at most one "
        "concurrency's worth of tasks it cannot start yet. Short tasks drain faster with "
        "more; for long tasks set it to the concurrency (fair dispatch across processes). "
        "A consumer crash re-runs at most this many.",
    )
    running_event_delay_seconds: float = Field(
        0.05,
        ge=0,
        description="How long a task runs before its consumer publishes the `running` "
        "lifecycle event. Tasks that finish sooner publish none: one confirmed, persistent "
        "publish fewer per task, the largest single cost of short tasks; their outcome event "
        "still carries `started_at`, so task records keep when they started. The price: "
        "for this long a running task still shows `queued`. 0 = always publish `running` "
        "before the handler.",
    )
    consumer_grace_seconds: float = Field(
        30.0,
        ge=0,
        description="On SIGTERM, how long in-flight tasks may finish before they are requeued.",
    )
    health_port: int = Field(
        8081,
        ge=0,
        le=65535,
        description="Port of a consumer's `/healthz`, `/readyz` and `/metrics` "
        "(on `WARREN_HTTP_HOST`; 0 = off). The gateway serves them on its own port.",
    )
    worker_id: str | None = Field(
        None, description="Name of this consumer in events and logs (default: host:pid)."
    )
    cancellation_retention_seconds: float = Field(
        86_400.0,
        gt=0,
        le=604_800,
        description="How long consumers remember a cancelled task id; a consumer starting "
        "later reads the control stream this far back (it keeps 7 days). Keep it above the "
        "longest retry tier.",
    )

    # --- telemetry ---------------------------------------------------------
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
        1.0, ge=0, le=1, description="Fraction of new traces that are sampled."
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

    # --- example handlers --------------------------------------------------
    smtp_host: str = Field("127.0.0.1", description="SMTP server for `email.send`.")
    smtp_port: int = Field(1025, ge=1, le=65535, description="SMTP port for `email.send`.")
    smtp_sender: str = Field(
        "warren@localhost", description="Envelope sender address of `email.send`."
    )
    smtp_timeout_seconds: float = Field(10.0, gt=0, description="SMTP connect/command timeout.")
    webhook_signing_secret: SecretStr = Field(
        SecretStr("change-me"),
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
    outbound_allow_private_networks: bool = Field(
        False,
        description="Let handlers' HTTP requests (`webhook.deliver`, `media.thumbnail`) reach "
        "loopback, private, link-local and other non-public addresses. Off: such a URL is "
        "dead-lettered and no connection to such an address is made (SSRF). On only where the "
        "receivers run on the same machine or network (a laptop, tests).",
    )

    @field_validator("retry_tiers_seconds")
    @classmethod
    def _tiers_sorted_unique(cls, tiers: tuple[float, ...]) -> tuple[float, ...]:
        if any(t <= 0 for t in tiers):
            raise ValueError("retry tiers must be positive")
        return tuple(sorted(set(tiers)))

    @model_validator(mode="after")
    def _backoff_bounds(self) -> Settings:
        if self.retry_max_seconds < self.retry_base_seconds:
            raise ValueError("retry_max_seconds must be >= retry_base_seconds")
        return self

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

    def prefetch_for(self, concurrency: int) -> int:
        """The prefetch of a consumer running ``concurrency`` handlers (``consumer_prefetch``)."""
        return self.consumer_prefetch or PREFETCH_PER_SLOT * concurrency

    @property
    def worker_name(self) -> str:
        return self.worker_id or f"{socket.gethostname()}:{os.getpid()}"
