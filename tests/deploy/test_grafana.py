"""deploy/grafana/warren.json: a dashboard whose queries name the metrics Warren exports.

The metric names are the Prometheus contract of the gateway and consumers
(``service/metrics.py``); test_compose_run.py scrapes them from running
processes and checks that the names used here are really served.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.deploy.common import DEPLOY

DASHBOARD = DEPLOY / "grafana" / "warren.json"
# Prometheus metric families Warren exports, with the labels a query may use.
METRICS: dict[str, set[str]] = {
    "warren_submissions_total": {"type", "outcome", "reason"},
    "warren_publish_confirm_seconds": {"le", "exchange"},
    "warren_deliveries_total": {"queue", "type", "outcome"},
    "warren_handler_duration_seconds": {"le", "queue", "type"},
    "warren_inflight_tasks": {"queue"},
    "warren_redeliveries_total": {"queue"},
    "warren_queue_messages": {"queue", "kind"},
}
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")
LABEL_VALUES = {
    "outcome": {"accepted", "rejected", "unavailable", "succeeded", "retried", "dead"},
    "kind": {"work", "retry", "dead"},
}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    found = []
    for panel in dashboard()["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def queries() -> list[str]:
    return [t["expr"] for p in panels() for t in p.get("targets", [])]


def family(series: str) -> str:
    """The metric family of a series name (a histogram's _bucket/_sum/_count included)."""
    for suffix in HISTOGRAM_SERIES:
        if series.endswith(suffix) and series[: -len(suffix)] in METRICS:
            return series[: -len(suffix)]
    return series


def dashboard_metrics() -> set[str]:
    return {family(name) for q in queries() for name in re.findall(r"\bwarren_\w+", q)}


def test_dashboard_queries_only_warren_metrics_and_all_of_them() -> None:
    assert dashboard_metrics() == set(METRICS)


def test_histograms_are_queried_through_their_buckets() -> None:
    for query in queries():
        for name in re.findall(r"\bwarren_\w+", query):
            if name.endswith("_seconds_bucket"):
                assert query.startswith("histogram_quantile("), query
                assert "by (le" in query, query
            assert not name.endswith("_seconds"), f"{query}: a histogram has no plain series"


def test_label_names_and_values_in_selectors_exist() -> None:
    for query in queries():
        for name, selector in re.findall(r"\b(warren_\w+)\{([^}]*)\}", query):
            labels = METRICS[family(name)]
            for label, value in re.findall(r'(\w+)\s*[!=]~?\s*"([^"]*)"', selector):
                assert label in labels, f"{query}: {name} has no label {label}"
                if label in LABEL_VALUES:
                    assert value in LABEL_VALUES[label], f"{query}: {label}={value}"
        for grouping in re.findall(r"by \(([^)]*)\)", query):
            used = {g.strip() for g in grouping.split(",")}
            allowed = set.union(*(METRICS[m] for m in dashboard_metrics() if m in query))
            assert used <= allowed, f"{query}: grouped by an unknown label"


def test_depth_is_not_summed_over_consumer_replicas() -> None:
    """Every consumer of a queue reports that queue's depth: replicas must not add up."""
    for query in queries():
        if "warren_queue_messages" in query:
            assert query.startswith("max by ("), query


def test_dashboard_structure_is_importable() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels():
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"] and panel.get("description"), panel["title"]
            assert all(t["refId"] for t in panel["targets"])
