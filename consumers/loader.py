"""A consumer's handlers: the built-in ``diag.*`` ones plus those of the app's handler modules.

Handlers are found, not listed twice: every ``@warren.handles`` function defined
in a module named by ``App.handlers`` is collected. A queue whose task types lack
a handler is refused later, when the consumer starts (``Registry.for_queue``).
"""

from __future__ import annotations

from typing import Any

from warren.consumers.handlers import BUILTIN_REGISTRY
from warren.consumers.registry import Handler, Registry
from warren.service.apps import App, import_handler_modules
from warren.service.errors import ConfigurationError


def registry_of(app: App) -> Registry:
    """Import the app's handler modules and build its settings: what ``warren consume`` runs."""
    found: list[Handler[Any]] = []
    for module in import_handler_modules(app):
        found.extend(h for h in vars(module).values() if isinstance(h, Handler))
    unknown = sorted({h.contract.name for h in found} - set(app.catalog))
    if unknown:
        raise ConfigurationError(f"handlers of task types the app does not declare: {unknown}")
    try:
        return BUILTIN_REGISTRY.extended(_unique(found), app.build_settings())
    except ValueError as exc:
        raise ConfigurationError(f"app handlers: {exc}") from None


def _unique(handlers: list[Handler[Any]]) -> list[Handler[Any]]:
    """One entry per handler object: a module that re-exports another's handler is no clash."""
    return list({id(h): h for h in handlers}.values())
