"""Every metric Warren exports, defined once (Prometheus names in the comments).

Instruments come from OpenTelemetry's global meter, which proxies to the
provider ``setup_telemetry`` installs, so modules can hold them from import on.
Labels are bounded sets (task types, queues, outcomes, problem codes): never
task ids.
"""

from __future__ import annotations

from opentelemetry import metrics

_meter = metrics.get_meter("warren")
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0, 300.0,
)  # fmt: skip

# warren_submissions_total{type, outcome=accepted|rejected|unavailable, reason}
SUBMISSIONS = _meter.create_counter(
    "warren.submissions", description="Task submissions at the gateway, by outcome."
)
# warren_publish_confirm_seconds{exchange=tasks|retry|dead|events}
PUBLISH_CONFIRM = _meter.create_histogram(
    "warren.publish_confirm",
    unit="s",
    description="Time from publish to the broker's confirm.",
    explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
)
# warren_deliveries_total{queue, type, outcome=succeeded|retried|dead}
DELIVERIES = _meter.create_counter(
    "warren.deliveries", description="Deliveries settled by consumers, by outcome."
)
# warren_handler_duration_seconds{queue, type}
HANDLER_DURATION = _meter.create_histogram(
    "warren.handler_duration",
    unit="s",
    description="Time a handler ran, successful or not.",
    explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
)
# warren_inflight_tasks{queue}
INFLIGHT = _meter.create_up_down_counter(
    "warren.inflight_tasks", description="Deliveries a consumer is processing now."
)
# warren_redeliveries_total{queue}
REDELIVERIES = _meter.create_counter(
    "warren.redeliveries",
    description="Deliveries the broker marked redelivered (a consumer died or requeued).",
)

# warren_queue_messages{queue, kind=work|retry|dead}: sampled by each consumer for its queue.
QUEUE_DEPTHS: dict[tuple[str, str], int] = {}


def _observe_depths(_options: metrics.CallbackOptions) -> list[metrics.Observation]:
    return [
        metrics.Observation(count, {"queue": queue, "kind": kind})
        for (queue, kind), count in QUEUE_DEPTHS.items()
    ]


QUEUE_MESSAGES = _meter.create_observable_gauge(
    "warren.queue_messages",
    callbacks=[_observe_depths],
    description="Messages ready in work, retry-tier (summed) and dead-letter queues.",
)
