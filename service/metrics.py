"""Every metric Warren exports, defined once (Prometheus names in the comments).

Instruments come from OpenTelemetry's global meter, which proxies to the
provider ``setup_telemetry`` installs, so modules can hold them from import on.
Labels are bounded sets (task types, queues, outcomes, problem codes): never
task ids.

What the gateway counts on every request, and a consumer on every delivery, is a
tally instead (``Tally``, ``TallyHistogram``: a dict increment, read when
scraped): an SDK measurement hashes its attribute set, takes a lock and
aggregates, 10 to 20 µs each.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterator, Mapping

from opentelemetry import metrics
from prometheus_client import REGISTRY
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

_meter = metrics.get_meter("warren")
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0, 300.0,
)  # fmt: skip


class Tally:
    """A counter as the SDK's (``add(amount, attributes)``), kept as a ``Counter`` of label
    values and observed when scraped."""

    def __init__(self, name: str, labels: tuple[str, ...], description: str) -> None:
        self.labels = labels
        self.counts: Counter[tuple[str, ...]] = Counter()
        _meter.create_observable_counter(name, callbacks=[self._observe], description=description)

    def add(self, amount: int, attributes: Mapping[str, str]) -> None:
        self.counts[tuple([attributes[label] for label in self.labels])] += amount

    def _observe(self, _options: metrics.CallbackOptions) -> list[metrics.Observation]:
        return [
            metrics.Observation(count, dict(zip(self.labels, values, strict=True)))
            for values, count in self.counts.items()
        ]


class TallyHistogram(Collector):
    """A histogram as the SDK's (``record(seconds, attributes)``), kept as bucket counts per
    label values and collected by the Prometheus registry when scraped.

    OpenTelemetry has no observable histogram, so this one joins ``/metrics`` as a
    ``prometheus_client`` collector under the name the SDK's exporter would give it.
    """

    def __init__(self, name: str, labels: tuple[str, ...], description: str) -> None:
        self.name, self.labels, self.description = name, labels, description
        self.series: dict[tuple[str | int, ...], list[float]] = {}  # bucket counts + [sum]
        REGISTRY.register(self)

    def record(self, seconds: float, attributes: Mapping[str, str | int]) -> None:
        self.record_key(seconds, tuple([attributes[label] for label in self.labels]))

    def record_key(self, seconds: float, key: tuple[str | int, ...]) -> None:
        """``record`` with the label values already in ``labels``' order: no mapping built
        per measurement (a consumer records one per delivery)."""
        counts = self.series.get(key)
        if counts is None:
            counts = self.series[key] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # le is inclusive
        counts[-1] += seconds

    def collect(self) -> Iterator[HistogramMetricFamily]:
        names = [label.replace(".", "_") for label in self.labels]
        family = HistogramMetricFamily(self.name, self.description, labels=names)
        for key, counts in list(self.series.items()):
            cumulative, buckets = 0.0, []
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), counts, strict=False):
                cumulative += count
                buckets.append((_bound(bound), cumulative))
            family.add_metric([str(v) for v in key], buckets, sum_value=counts[-1])
        yield family


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


# warren_submissions_total{type, outcome=accepted|rejected|unavailable, reason}
SUBMISSIONS = Tally(
    "warren.submissions",
    ("type", "outcome", "reason"),
    "Task submissions at the gateway, by outcome.",
)
# warren_publish_confirm_seconds{exchange=tasks|retry|dead|events}: one measurement per
# gateway publish; consumers record one settle in ``CONFIRM_SAMPLE`` (the wait for all of
# its publishes, confirmed together, labelled with the outcome's main exchange).
CONFIRM_SAMPLE = 10
PUBLISH_CONFIRM = TallyHistogram(
    "warren_publish_confirm_seconds",
    ("exchange",),
    "Time from publish to the broker's confirm (a consumer: of all of one outcome's publishes).",
)
# warren_handler_duration_seconds{queue, type}
HANDLER_DURATION = TallyHistogram(
    "warren_handler_duration_seconds", ("queue", "type"), "Time a handler ran, successful or not."
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
HTTP_SERVER_DURATION = TallyHistogram(
    "http_server_request_duration_seconds",
    ("http.request.method", "http.route", "http.response.status_code"),
    "Time the gateway took to answer a request (probes and scrapes excluded).",
)

# warren_requests_refused_total{reason=missing-credentials|invalid-token|forbidden|
#                                      forbidden-type|rate-limited}
REQUESTS_REFUSED = _meter.create_counter(
    "warren.requests_refused",
    description="Requests the gateway refused for who sent them: no or a bad API key, "
    "a missing scope or task type, over the client's rate limit.",
)
