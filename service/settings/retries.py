"""Retries: the TTL tiers the broker holds failed tasks in, and the backoff mapped onto them.

One section of Warren's settings (``warren.service.settings``): code that needs only this
section takes this type, so what it depends on is visible in its signature.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings

from warren.service.settings.base import CONFIG


class RetrySettings(BaseSettings):
    """The retry tiers and the default backoff."""

    model_config = CONFIG

    retry_tiers_seconds: tuple[float, ...] = Field(
        (1.0, 5.0, 30.0, 120.0, 600.0, 3600.0),
        min_length=1,
        description="Delays of the TTL retry queues, one queue per tier and work queue. "
        "Changing a tier's delay declares a new tier queue.",
    )
    retry_base_seconds: float = Field(
        1.0, gt=0, description="Backoff of the first retry; doubles with each attempt."
    )
    retry_max_seconds: float = Field(3600.0, gt=0, description="Upper bound of the backoff.")
    retry_jitter: float = Field(
        0.2, ge=0, le=1, description="Relative jitter added to each backoff (0.2 = up to +20 %)."
    )

    @field_validator("retry_tiers_seconds")
    @classmethod
    def _tiers_sorted_unique(cls, tiers: tuple[float, ...]) -> tuple[float, ...]:
        if any(t <= 0 for t in tiers):
            raise ValueError("retry tiers must be positive")
        return tuple(sorted(set(tiers)))

    @model_validator(mode="after")
    def _backoff_bounds(self) -> RetrySettings:
        if self.retry_max_seconds < self.retry_base_seconds:
            raise ValueError("retry_max_seconds must be >= retry_base_seconds")
        return self
