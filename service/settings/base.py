"""What every section of the settings shares: the ``WARREN_`` prefix, frozen values."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

# Unknown WARREN_* names are ignored by the model (tests/deploy refuses them in deploy files).
CONFIG = SettingsConfigDict(env_prefix="WARREN_", extra="ignore", frozen=True)
