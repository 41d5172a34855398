"""What an app is — a user's task contracts and where their handlers live — and how one is loaded.

An app is a value in the user's own module (``myshop/tasks.py``)::

    app = warren.App(contracts=[send_receipt], handlers=["myshop.handlers"], settings=ShopSettings)

``warren gateway --app myshop.tasks`` imports that module for its contracts and
never the handler modules, so the gateway needs none of the handlers'
dependencies. ``warren consume --app myshop.tasks`` imports the handler modules
too, and builds the app's settings once: handlers get that object as
``ctx.settings``, never Warren's own settings. The ``diag.*`` task types are
built in and belong to every app.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from warren.service.contracts import Catalog, TaskContract
from warren.service.errors import ConfigurationError
from warren.service.schedules import Schedule, check_schedules
from warren.service.tasks import BUILTIN_CATALOG

APP_ATTRIBUTE = "app"  # what ``--app module`` looks for, unless given as ``module:attribute``


@dataclass(frozen=True)
class App:
    """A set of task types and their handlers, declared in the user's own package.

    ``contracts``: the task types (``TaskContract``) the app declares.
    ``handlers``: names of the modules that hold the handlers (``@warren.handles``); only
    consumers import them. ``settings``: the app's own settings class (a pydantic-settings
    ``BaseSettings``); consumers build it once and hand it to handlers as ``ctx.settings``.
    ``schedules``: tasks submitted on a schedule (``Schedule``), fired by ``warren scheduler``.
    """

    contracts: Iterable[TaskContract[Any]] = ()
    handlers: Iterable[str] = ()
    settings: type[BaseSettings] | None = None
    schedules: Iterable[Schedule] = ()
    catalog: Catalog = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        contracts = tuple(self.contracts)
        object.__setattr__(self, "contracts", contracts)
        object.__setattr__(self, "handlers", tuple(self.handlers))
        try:
            object.__setattr__(self, "catalog", BUILTIN_CATALOG.extended(contracts))
        except ValueError as exc:  # a name used twice, or one of the built-in names
            raise ConfigurationError(f"app: {exc}") from None
        object.__setattr__(self, "schedules", tuple(self.schedules))
        check_schedules(self.schedules, self.catalog)

    def build_settings(self) -> Any:
        """The handlers' settings, read from the environment; a clear error when invalid."""
        if self.settings is None:
            return None
        try:
            return self.settings()
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or self.settings.__name__
            raise ConfigurationError(
                f"app settings {self.settings.__name__}: {where}: {first['msg']}"
            ) from None


BUILTIN_APP = App()


def load_app(spec: str | None) -> App:
    """The app named by ``module[:attribute]`` (the current directory is importable, as
    the user's project usually is); ``None``: the built-in ``diag.*`` task types only."""
    if not spec:
        return BUILTIN_APP
    module_name, _, attribute = spec.partition(":")
    module = _import(module_name, f"app {spec!r}")
    found = getattr(module, attribute or APP_ATTRIBUTE, None)
    if not isinstance(found, App):
        raise ConfigurationError(
            f"app {spec!r}: {module_name} has no warren.App named "
            f"{attribute or APP_ATTRIBUTE!r} (write `{APP_ATTRIBUTE} = warren.App(...)`)"
        )
    return found


def import_handler_modules(app: App) -> list[Any]:
    """Import the app's handler modules (consumers only): what they define is collected by
    ``warren.consumers.registry.registry_of``."""
    return [_import(name, "handler module") for name in app.handlers]


def _import(name: str, what: str) -> Any:
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):
            raise ConfigurationError(
                f"{what}: cannot import {name!r} (is its package installed, or run from "
                "the directory that holds it?)"
            ) from None
        raise
