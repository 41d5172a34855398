"""Start-up failures a user can cause, each told as one line naming the setting that fixes it.

A 60-line traceback buries "WARREN_HTTP_PORT is not a number" or "the broker
refused user guest" under frames nobody needs. Whatever a user can get wrong
(a setting, a flag, missing API keys, a port in use, a broker refusing its
user, an unknown queue) is raised as, or translated here into, one line; the
``warren`` command prints it on stderr and exits ``EXIT_REFUSED``. A failure
that is not the user's (a bug) still shows its traceback.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from pydantic import ValidationError
from pydantic_settings import SettingsError

from warren.service.errors import ConfigurationError
from warren.service.settings import Settings

EXIT_REFUSED = 2  # as for a usage error: what was asked cannot run as configured
REFUSALS = (ValidationError, SettingsError, ConfigurationError)
# Never echoed: they may hold passwords, tokens or key hashes.
_SECRET_FIELDS = {"broker_url", "store_url", "api_keys", "webhook_signing_secret"}
_FLAGS = {"http_port": "--port", "http_host": "--host", "health_port": "--health-port"}


def explain(exc: BaseException) -> str:
    """One line: what is wrong, and which ``WARREN_*`` variable (or flag) fixes it."""
    if isinstance(exc, ValidationError):
        return "; ".join(_validation_error(e) for e in exc.errors(include_url=False))
    if isinstance(exc, SettingsError):
        field = re.search(r'field "(\w+)"', str(exc))
        name = _variable(field.group(1)) if field else "a WARREN_* variable"
        return f"invalid setting {name}: not valid JSON (a JSON list or object is expected)"
    return " ".join(str(exc).split())  # ConfigurationError: already one line, made sure


def _variable(field: str) -> str:
    flag = _FLAGS.get(field)
    return f"WARREN_{field.upper()}" + (f" ({flag})" if flag else "")


def _validation_error(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if not error["loc"]:  # a rule across fields: name each field the way the user sets it
        for field in Settings.model_fields:
            message = re.sub(rf"\b{field}\b", f"WARREN_{field.upper()}", message)
        return f"invalid settings: {message}"
    field = str(error["loc"][0])
    value = error.get("input")
    shown = (
        f"={value!r}"
        if field not in _SECRET_FIELDS
        and isinstance(value, str | int | float)
        and len(str(value)) < 80
        else ""
    )
    return f"invalid setting {_variable(field)}{shown}: {message}"


def store_refusal(exc: BaseException, url: str) -> ConfigurationError | None:
    """A task store that cannot be opened (unreachable, refusing, a path that cannot be
    made, an unknown scheme) as one line; None for anything not raised by the store."""
    tb, store = exc.__traceback__, Path(__file__).parent / "store"
    while tb is not None and not Path(tb.tb_frame.f_code.co_filename).is_relative_to(store):
        tb = tb.tb_next
    if tb is None or not isinstance(exc, Exception):
        return None
    parts = urlsplit(url)
    if "@" in parts.netloc:  # never show a user or password
        url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    return ConfigurationError(f"cannot open the task store {url} ({exc}): check WARREN_STORE_URL")


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a usage error told in one line (and ``--help`` pointed at), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_REFUSED, f"{self.prog}: {message} (see {self.prog} --help)\n")
