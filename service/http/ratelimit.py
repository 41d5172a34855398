"""Per-client rate limits: a token bucket per client identity, in this process.

Each client (its API key id; with authentication off, its ``X-Warren-Client``
or else its address) has a bucket of ``burst`` requests refilled at ``rate``
per second; a request takes one, and with none left it gets ``429`` with
``Retry-After`` and nothing happens. Buckets live in the gateway process, so
with N replicas a client's budget is N times the setting (a load balancer
spreading requests evenly makes that a fair approximation; a shared budget
would need a shared store on every request).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from warren.service.http.auth import Client
from warren.service.http.problems import Problem
from warren.service.metrics import REQUESTS_REFUSED
from warren.service.settings import Settings

MAX_BUCKETS = 10_000  # identities are client-chosen with authentication off: bound the memory


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: int


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Token buckets by client, least recently used dropped beyond ``MAX_BUCKETS``.

    A dropped bucket comes back full: at worst a client that was idle among
    ``MAX_BUCKETS`` busier ones gets its burst again.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, who: str, rate: Rate) -> float:
        """Take one request from ``who``'s bucket: 0 if allowed, else seconds until one is."""
        now = self._clock()
        bucket = self._buckets.pop(who, None) or _Bucket(float(rate.burst), now)
        self._buckets[who] = bucket
        if len(self._buckets) > MAX_BUCKETS:
            self._buckets.popitem(last=False)
        bucket.tokens = min(float(rate.burst), bucket.tokens + (now - bucket.at) * rate.per_second)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / rate.per_second


def rate_of(client: Client, settings: Settings) -> Rate | None:
    """The client's rate: its key's override, else the setting; None = unlimited."""
    key = client.key
    per_second = settings.rate_limit_per_second
    burst = settings.rate_limit_burst
    if key is not None:
        if key.rate_limit_per_second is not None:
            per_second = key.rate_limit_per_second
        burst = key.rate_limit_burst or burst
    return Rate(per_second, burst) if per_second > 0 else None


RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)


def spend(buckets: RateLimiter, client: Client | None, settings: Settings) -> None:
    """Take one request from ``client``'s budget, or raise its 429 (nothing else happens).

    The gateway's middleware spends one per request; a batch spends one more per task after its
    first, so a batch of N costs what N submissions cost.
    """
    rate = rate_of(client, settings) if client is not None else None
    if client is None or rate is None or not (wait := buckets.take(client.limit_key, rate)):
        return
    REQUESTS_REFUSED.add(1, {"reason": "rate-limited"})
    raise Problem(
        429,
        "rate-limited",
        "Too Many Requests",
        f"over {rate.per_second:g} requests/s (burst {rate.burst}); retry in {wait:.2f} s",
        headers={"Retry-After": str(max(1, math.ceil(wait)))},
    )
