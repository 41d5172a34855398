"""The handlers of the built-in ``diag.*`` task types; every consumer has them."""

from __future__ import annotations

from warren.consumers.handlers import diag
from warren.consumers.registry import Registry

BUILTIN_REGISTRY = Registry((diag.echo, diag.sleep, diag.flaky, diag.fail))
