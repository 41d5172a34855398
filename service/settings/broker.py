"""The broker: where it is, how Warren's objects are named and declared, how long to wait.

One section of Warren's settings (``warren.service.settings``): code that needs only this
section takes this type, so what it depends on is visible in its signature.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings

from warren.service.settings.base import CONFIG

NAMESPACE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class BrokerSettings(BaseSettings):
    """Where the broker is and how Warren uses it."""

    model_config = CONFIG

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
        description="Deliveries of a message that may go unsettled (its consumer died or lost "
        "its connection) before the consumer dead-letters it (`delivery-limit`): a task that "
        "kills its consumer process cannot crash-loop a deployment. Quorum queues get it as "
        "`x-delivery-limit` too; on classic queues Warren counts (`warren-deliveries`).",
    )
    max_queue_length: int | None = Field(
        None,
        ge=1,
        description="If set, work queues refuse publishes beyond this many messages "
        "(`reject-publish`) and the gateway answers 429 (`queue-full`) instead of growing "
        "the queue.",
    )
    priority_levels: int = Field(
        10,
        ge=1,
        le=10,
        description="Priorities a classic work queue honours (`x-max-priority` is one less): "
        "10 covers the submission's `priority` 0-9, 1 declares no priority queue. A submission "
        "asking for a priority the queues cannot honour (at or above this, or any above 0 on "
        "quorum queues, which ignore priorities on RabbitMQ 3.10) is a `422`. Changing it "
        "needs the work queues to be recreated (README: Priorities).",
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
