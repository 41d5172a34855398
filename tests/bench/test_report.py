"""The report and the load generator's choice, without a broker."""

from __future__ import annotations

import math

import pytest

from warren.service.bench import gateway, parser
from warren.service.bench.report import Report, Row, Target, percentile


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert math.isnan(percentile([], 50))


def test_render_shows_ratios_targets_and_environment() -> None:
    report = Report("consumer", settings={"repeats": 3}, environment={"cores": 2})
    report.rows = [
        Row("raw", "drain", "tasks/s", [9000.0, 8000.0, 8500.0]),
        Row("warren", "drain", "tasks/s", [6000.0, 6100.0, 5900.0], ratio=6000 / 8500),
    ]
    report.targets = [Target("warren / raw", 6000 / 8500, 0.70, ">=")]
    text = report.render()
    assert "8,500 tasks/s" in text and "0.71" in text
    assert "[met ] warren / raw" in text
    assert '"cores": 2' in text
    data = report.to_json()
    assert data["rows"][1]["value"] == 6000.0 and data["targets"][0]["met"] is True


def test_without_wrk_the_python_generator_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("warren.service.bench.load.shutil.which", lambda name: None)
    args = parser().parse_args(["gateway"])
    assert gateway.load_spec(args).generator == "python"
    with pytest.raises(SystemExit):
        gateway.load_spec(parser().parse_args(["gateway", "--loadgen", "wrk"]))
