"""The end-to-end benchmark's stages: a task's latency cut at the times its event carries."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from warren.service.bench.e2e_stages import Arrival, cores, stage_percentiles, stage_seconds


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def test_the_stages_add_up_to_the_latency() -> None:
    # Given a task due at t=100 s, built 2 ms later, started 3 ms after that, ended
    # 0.5 ms later, and whose event arrived 4 ms after its end
    event = {"created_at": iso(100.002), "started_at": iso(100.005), "at": iso(100.0055)}
    arrival = Arrival.of(event, 100.0095)
    stages = stage_seconds(100.0, arrival)
    assert stages is not None
    assert stages == pytest.approx(
        {"gateway": 0.002, "to consumer": 0.003, "handler": 0.0005, "event": 0.004}, abs=1e-6
    )
    assert sum(stages.values()) == pytest.approx(0.0095, abs=1e-6)


def test_an_event_without_its_times_has_no_stages_and_is_left_out() -> None:
    old = Arrival.of({"at": iso(100.001)}, 100.002)  # a consumer older than started_at
    assert stage_seconds(100.0, old) is None
    figures = stage_percentiles({"a": 100.0, "b": 100.0}, {"a": old})  # "b" never arrived
    assert all(math.isnan(value) for value in figures.values())  # no sample


def test_cpu_seconds_become_cores() -> None:
    assert cores({"gateway": 5.0, "broker": 2.5}, 10.0) == {"gateway": 0.5, "broker": 0.25}
