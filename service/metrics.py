"""Every metric Warren exports, defined once (Prometheus names in the comments).

Instruments come from OpenTelemetry's global meter, which proxies to the
provider ``setup_telemetry`` installs, so modules can hold them from import on;
a measurement taken per delivery is tallied in-process instead and read when
scraped (``TalliedHistogram``, and the observable instruments' dicts).
Labels are bounded sets (task types, queues, outcomes, problem codes): never
task ids.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterator

from opentelemetry import metrics
from prometheus_client import REGISTRY
from prometheus_client.core import HistogramMetricFamily, Metric

_meter = metrics.get_meter("warren")
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0, 300.0,
)  # fmt: skip

# warren_submissions_total{type, outcome=accepted|rejected|unavailable, reason}
SUBMISSIONS = _meter.create_counter(
    "warren.submissions", description="Task submissions at the gateway, by outcome."
)
# warren_publish_confirm_seconds{exchange=tasks|retry|dead|events}: one measurement per
# gateway publish; consumers record one settle in ``CONFIRM_SAMPLE`` (the wait for all of
# its publishes, confirmed together, labelled with the outcome's main exchange).
CONFIRM_SAMPLE = 10
PUBLISH_CONFIRM = _meter.create_histogram(
    "warren.publish_confirm",
    unit="s",
    description="Time from publish to the broker's confirm (a consumer: of all of one "
    "outcome's publishes).",
    explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
)


class TalliedHistogram:
    """A histogram tallied in-process (a bucket increment) and read when scraped.

    The SDK's ``Histogram.record`` hashes the label set, takes a lock and finds
    the bucket per call: ~20 µs on a loaded core, ~5 % of a consumer's CPU per
    task for one measurement. Here a measurement is a bisect and two additions
    under a tuple key, and the cumulative buckets are built only on a scrape, by
    a ``prometheus_client`` collector (``/metrics`` is read from its registry).
    Measurements come from the event loop's thread only.
    """

    def __init__(
        self, name: str, description: str, labels: tuple[str, ...], bounds: tuple[float, ...]
    ) -> None:
        self.name = name
        self._description = description
        self._labels = list(labels)
        self._bounds = bounds
        self._les = [repr(float(bound)) for bound in bounds] + ["+Inf"]
        self._counts: dict[tuple[str, ...], list[int]] = {}
        self._sums: dict[tuple[str, ...], float] = {}

    def record(self, value: float, key: tuple[str, ...]) -> None:
        """One measurement; ``key`` holds the label values, in the order of ``labels``."""
        counts = self._counts.get(key)
        if counts is None:
            counts = self._counts[key] = [0] * (len(self._bounds) + 1)
            self._sums[key] = 0.0
        counts[bisect_left(self._bounds, value)] += 1  # a bucket holds values <= its bound
        self._sums[key] += value

    def collect(self) -> Iterator[Metric]:
        """The family as scraped (none before the first measurement)."""
        if not self._counts:
            return
        family = HistogramMetricFamily(self.name, self._description, labels=self._labels)
        for key, counts in list(self._counts.items()):
            cumulative = list(itertools.accumulate(counts))
            buckets = list(zip(self._les, cumulative, strict=True))
            family.add_metric(list(key), buckets, self._sums[key])
        yield family


# warren_handler_duration_seconds{queue, type}
HANDLER_DURATION = TalliedHistogram(
    "warren_handler_duration_seconds",
    "Time a handler ran, successful or not.",
    ("queue", "type"),
    LATENCY_BUCKETS,
)
REGISTRY.register(HANDLER_DURATION)
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

# warren_deliveries_total{queue, type, outcome=succeeded|retried|dead|cancelled}: tallied
# in-process by consumers (a dict increment per delivery) and read when scraped.
DELIVERY_COUNTS: Counter[tuple[str, str, str]] = Counter()


def _observe_deliveries(_options: metrics.CallbackOptions) -> list[metrics.Observation]:
    return [
        metrics.Observation(count, {"queue": queue, "type": type_, "outcome": outcome})
        for (queue, type_, outcome), count in DELIVERY_COUNTS.items()
    ]


DELIVERIES = _meter.create_observable_counter(
    "warren.deliveries",
    callbacks=[_observe_deliveries],
    description="Deliveries settled by consumers, by outcome.",
)

# warren_inflight_tasks{queue}: read when scraped from each consumer's own count (a
# callable per queue), instead of two measurements per delivery on the hot path.
INFLIGHT_COUNTS: dict[str, Callable[[], int]] = {}


def _observe_inflight(_options: metrics.CallbackOptions) -> list[metrics.Observation]:
    return [metrics.Observation(count(), {"queue": q}) for q, count in INFLIGHT_COUNTS.items()]


INFLIGHT = _meter.create_observable_gauge(
    "warren.inflight_tasks",
    callbacks=[_observe_inflight],
    description="Deliveries a consumer holds now (running, waiting for a handler slot, "
    "or settling).",
)

# http_server_request_duration_seconds{http_request_method, http_route, http_response_status_code}
HTTP_SERVER_DURATION = _meter.create_histogram(
    "http.server.request.duration",
    unit="s",
    description="Time the gateway took to answer a request (probes and scrapes excluded).",
    explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
)

# warren_requests_refused_total{reason=missing-credentials|invalid-token|forbidden|
#                                      forbidden-type|rate-limited}
REQUESTS_REFUSED = _meter.create_counter(
    "warren.requests_refused",
    description="Requests the gateway refused for who sent them: no or a bad API key, "
    "a missing scope or task type, over the client's rate limit.",
)
