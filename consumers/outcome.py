"""How a delivery ends: succeeded, retried in a TTL tier, dead-lettered or cancelled."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from warren.service.contracts import Backoff, nearest_tier
from warren.service.errors import Permanent, Retry
from warren.service.wire import Envelope


@dataclass(frozen=True)
class Succeeded:
    result: Any


@dataclass(frozen=True)
class RetryIn:
    tier: float
    error_type: str
    error: str


@dataclass(frozen=True)
class DeadLetter:
    reason: str
    error_type: str
    error: str


@dataclass(frozen=True)
class Cancelled:
    """Cancelled on request: before it ran (while queued or in a retry tier) or while running."""

    reason: str = "cancel-requested"


Outcome = Succeeded | RetryIn | DeadLetter | Cancelled


def describe(exc: BaseException) -> tuple[str, str]:
    """Error type and message for headers, events and logs (never the payload)."""
    if isinstance(exc, TimeoutError):
        return "TimeoutError", "the handler did not finish within the task's timeout"
    return type(exc).__qualname__, str(exc) or type(exc).__qualname__


def decide(
    exc: BaseException, envelope: Envelope, backoff: Backoff, tiers: tuple[float, ...]
) -> RetryIn | DeadLetter:
    """The outcome of a failed attempt.

    ``Permanent`` dead-letters at once; any other failure retries while attempts
    remain. ``Retry(after=x)`` waits at least ``x`` (the smallest tier not below
    it); otherwise the backoff's delay is rounded to the nearest tier.
    """
    error_type, error = describe(exc)
    match exc:
        case Permanent():
            return DeadLetter("permanent", error_type, error)
        case _ if not envelope.attempts_left:
            return DeadLetter("attempts-exhausted", error_type, error)
        case Retry(after=float() | int() as after):
            return RetryIn(nearest_tier(after, tiers, at_least=True), error_type, error)
        case _:
            return RetryIn(nearest_tier(backoff.delay(envelope.attempt), tiers), error_type, error)
