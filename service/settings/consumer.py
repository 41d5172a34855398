"""Consumers: concurrency, prefetch, shutdown, health port, and their handlers' outbound HTTP.

One section of Warren's settings (``warren.service.settings``): code that needs only this
section takes this type, so what it depends on is visible in its signature.
"""

from __future__ import annotations

import os
import socket

from pydantic import Field
from pydantic_settings import BaseSettings

from warren.service.settings.base import CONFIG

# Default prefetch (see ``consumer_prefetch``): enough deliveries to keep the handlers busy
# while those already run wait for their event batch's confirm.
PREFETCH_PER_SLOT = 4
MIN_PREFETCH = 128


class ConsumerSettings(BaseSettings):
    """How one consumer process runs its queue's handlers."""

    model_config = CONFIG

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
        "its event batch's confirm. Default (unset): the larger of 128 and four times the "
        "concurrency, sized for short tasks: a process drains at most prefetch ÷ the time a "
        "delivery is held, and a delivery is held until the batch carrying its outcome is "
        "confirmed (a disk write on the broker), so a small prefetch, not the CPU, would "
        "bound the drain. The cost: a consumer crash re-runs up to this many tasks, and a "
        "process may hold this many tasks another idle process could run. For long tasks "
        "set it to the concurrency (fair dispatch across processes, one re-run per slot).",
    )
    event_batch_max_events: int = Field(
        500,
        ge=1,
        le=10_000,
        description="Most lifecycle events in one event message. A consumer publishes "
        "the events that became due while its previous batch awaited its confirm as one "
        "persistent message per routing key (`<queue>.<status>`); larger batches are split.",
    )
    event_batch_max_bytes: int = Field(
        262_144,
        ge=4096,
        le=16_777_216,
        description="Largest body of one event message, in bytes (an event larger than this "
        "goes alone). Bounds what a reader of the events exchange, and the recorder's "
        "prefetch, hold per message.",
    )
    event_batch_min_events: int = Field(
        25,
        ge=1,
        le=10_000,
        description="Under load, the event batch a consumer waits to fill: when its previous "
        "batch is confirmed and fewer events than this wait, they wait up to "
        "`WARREN_EVENT_BATCH_LINGER_SECONDS` for more, and go at once when this many are "
        "there. Under load means the batch just confirmed carried a quarter of this or more; "
        "an idle consumer's events never wait. 25 keeps the broker at 0.04 event messages a task.",
    )
    event_batch_linger_seconds: float = Field(
        0.005,
        ge=0,
        le=0.1,
        description="The longest an event batch waits to fill under load (see "
        "`WARREN_EVENT_BATCH_MIN_EVENTS`): what each of its deliveries is held longer before "
        "its ack at most. 0 = a batch goes as soon as the previous one is confirmed.",
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
        description="Port of a consumer's (and `warren scheduler`'s) `/healthz`, `/readyz` "
        "and `/metrics` (on `WARREN_HTTP_HOST`; 0 = off). The gateway serves them on its own "
        "port.",
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

    outbound_allow_private_networks: bool = Field(
        False,
        description="Let handlers' HTTP requests (`webhook.deliver`, `media.thumbnail`) reach "
        "loopback, private, link-local and other non-public addresses. Off: such a URL is "
        "dead-lettered and no connection to such an address is made (SSRF). On only where the "
        "receivers run on the same machine or network (a laptop, tests).",
    )

    def prefetch_for(self, concurrency: int) -> int:
        """The prefetch of a consumer running ``concurrency`` handlers (``consumer_prefetch``)."""
        return self.consumer_prefetch or max(MIN_PREFETCH, PREFETCH_PER_SLOT * concurrency)

    @property
    def worker_name(self) -> str:
        return self.worker_id or f"{socket.gethostname()}:{os.getpid()}"
