"""The gateway: where it listens, how many processes, and where task records are kept.

One section of Warren's settings (``warren.service.settings``): code that needs only this
section takes this type, so what it depends on is visible in its signature.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from warren.service.settings.base import CONFIG


class GatewaySettings(BaseSettings):
    """The HTTP gateway and its task store."""

    model_config = CONFIG

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
    max_batch_tasks: int = Field(
        1000,
        ge=1,
        le=10_000,
        description="Most tasks one `POST /v1/tasks/batch` may carry; more is a `422`.",
    )
    max_batch_body_bytes: int = Field(
        4_194_304,
        ge=1024,
        description="Largest accepted `POST /v1/tasks/batch` body, in bytes; each task in it "
        "is held to `WARREN_MAX_BODY_BYTES` as if submitted alone (a `413` item).",
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
        description="Most lifecycle events the gateway's recorder writes in one transaction "
        "(a batch message larger than that is written alone).",
    )
    recorder_max_unacked_events: int = Field(
        100_000,
        ge=1,
        le=1_000_000,
        description="About how many lifecycle events the recorder holds unacknowledged, at "
        "most. Its prefetch is in messages and a message carries up to "
        "`WARREN_EVENT_BATCH_MAX_EVENTS` events, so it holds this ÷ that many messages (at "
        "least 2; 200 by default): what a gateway may buffer in memory when messages are full. "
        "Under a steady load messages are small (a consumer's batch holds what became due "
        "during one confirm), so there the message count is what keeps the recorder fed.",
    )
    recorder_max_unwritten_submissions: int = Field(
        20_000,
        ge=1,
        le=1_000_000,
        description="Most accepted tasks whose `queued` record a gateway holds in memory, "
        "unwritten (the 202 does not wait for the store; the record joins the recorder's next "
        "batch). At the bound, submissions wait for the store to catch up, up to "
        "`WARREN_PUBLISH_TIMEOUT_SECONDS`, then get `503 store-behind` with `Retry-After`: "
        "a store slower than the intake slows the intake instead of growing the gateway.",
    )
    dead_letter_retention_days: float = Field(
        14.0,
        gt=0,
        description="Dead letters kept in the store (browsed, replayed) are dropped after this "
        "long (checked hourly).",
    )
    dead_letter_max_bytes: int = Field(
        1_048_576,
        ge=0,
        description="Largest dead-letter payload kept whole; a larger one keeps its headers and "
        "size only, and can be discarded but not replayed.",
    )
