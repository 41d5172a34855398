"""Backoff → tier mapping and the retry/dead-letter decision (pure functions, no broker)."""

from __future__ import annotations

import random

import pytest

from tests.test_envelope import sample_envelope
from warren.consumers.outcome import DeadLetter, RetryIn, decide
from warren.service.contracts import Backoff, nearest_tier
from warren.service.errors import Permanent, Retry
from warren.service.wire import Envelope

TIERS = (1.0, 5.0, 30.0, 120.0, 600.0, 3600.0)


@pytest.mark.parametrize(
    ("delay", "tier"),
    [
        (0.01, 1.0),
        (1.0, 1.0),
        (2.0, 1.0),
        (2.5, 5.0),
        (4.0, 5.0),
        (12.0, 5.0),
        (13.0, 30.0),
        (59.0, 30.0),
        (61.0, 120.0),
        (300.0, 600.0),
        (9999.0, 3600.0),
    ],
)
def test_delay_maps_to_nearest_tier_on_a_log_scale(delay: float, tier: float) -> None:
    assert nearest_tier(delay, TIERS) == tier


@pytest.mark.parametrize(
    ("delay", "tier"), [(0.5, 1.0), (1.0, 1.0), (1.1, 5.0), (31, 120.0), (5000, 3600.0)]
)
def test_at_least_never_retries_sooner_than_asked_unless_beyond_the_last_tier(
    delay: float, tier: float
) -> None:
    assert nearest_tier(delay, TIERS, at_least=True) == tier


def test_backoff_doubles_is_capped_and_jitter_only_adds() -> None:
    plain = Backoff(base_seconds=1, max_seconds=100, jitter=0)
    assert [plain.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 64, 100]
    jittered = Backoff(base_seconds=10, max_seconds=1000, jitter=0.2)
    rng = random.Random(7)
    delays = [jittered.delay(2, rng) for _ in range(200)]
    assert all(20 <= d <= 24 for d in delays)
    assert max(delays) - min(delays) > 2  # it really spreads


def envelope_at(attempt: int, max_attempts: int = 5) -> Envelope:
    return sample_envelope(attempt=attempt, max_attempts=max_attempts)


def test_transient_failure_retries_in_the_backoff_tier() -> None:
    backoff = Backoff(base_seconds=1, max_seconds=3600, jitter=0)
    outcomes = [decide(RuntimeError("x"), envelope_at(n, 10), backoff, TIERS) for n in (1, 3, 6)]
    assert [o.tier for o in outcomes if isinstance(o, RetryIn)] == [1.0, 5.0, 30.0]
    assert outcomes[0] == RetryIn(1.0, "RuntimeError", "x")


def test_permanent_dead_letters_even_with_attempts_left() -> None:
    outcome = decide(Permanent("bad address"), envelope_at(1), Backoff(), TIERS)
    assert outcome == DeadLetter("permanent", "Permanent", "bad address")


def test_last_attempt_dead_letters_as_exhausted_whatever_the_error() -> None:
    for exc in (RuntimeError("boom"), Retry(after=5), TimeoutError()):
        outcome = decide(exc, envelope_at(5, 5), Backoff(), TIERS)
        assert isinstance(outcome, DeadLetter) and outcome.reason == "attempts-exhausted"


def test_explicit_retry_after_is_honoured_at_least() -> None:
    outcome = decide(Retry(after=7), envelope_at(1), Backoff(), TIERS)
    assert isinstance(outcome, RetryIn) and outcome.tier == 30.0


def test_timeout_is_a_retryable_failure_with_a_readable_error() -> None:
    outcome = decide(TimeoutError(), envelope_at(1), Backoff(jitter=0), TIERS)
    assert isinstance(outcome, RetryIn) and outcome.error_type == "TimeoutError"
    assert "timeout" in outcome.error
