"""``warren settings``: the effective settings, with every secret masked.

Settings are pasted into issues, chats and CI logs; a password or a key hash
printed there is leaked. So every URL (the broker's, the store's, the OTLP
endpoint's) loses its password, API key entries keep their id and scopes but not their hash, and
any ``SecretStr`` (Warren's or the app's own settings) prints as stars.
"""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from warren.service.apps import load_app
from warren.service.settings import Settings

MASK = "********"


def mask_url(url: str) -> str:
    """The URL with its password (if any) replaced by ``MASK``; the user name stays."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    name = user.partition(":")[0]
    return parts._replace(netloc=f"{name}:{MASK}@{host}").geturl()


def _mask_keys(text: str) -> Any:
    """API key entries without their token hash; text that is not JSON is not shown."""
    try:
        entries = json.loads(text)
    except ValueError:
        return MASK
    if not isinstance(entries, list):
        return MASK
    return [
        {k: (MASK if k == "token_sha256" else v) for k, v in e.items()}
        if isinstance(e, dict)
        else MASK
        for e in entries
    ]


def masked(settings: BaseSettings) -> dict[str, Any]:
    """The settings as JSON-ready values, secrets masked (see the module's docstring)."""
    values: dict[str, Any] = settings.model_dump(mode="json")
    for name in type(settings).model_fields:
        raw = getattr(settings, name)
        if isinstance(raw, SecretStr):
            values[name] = MASK if raw.get_secret_value() else ""
        elif isinstance(raw, str) and "://" in raw:  # broker, store, OTLP endpoint, …
            values[name] = mask_url(raw)
        elif name == "api_keys" and isinstance(raw, str):
            values[name] = _mask_keys(raw)
    return values


def settings_markdown() -> str:
    """The README's configuration table, generated from the settings model."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = (
            ""
            if default is None
            else ("(secret)" if "secret" in name else json.dumps(default, default=str))
        )
        rows.append(f"| `WARREN_{name.upper()}` | `{shown}` | {field.description} |")
    return "\n".join(rows)


def cmd_settings(args: argparse.Namespace) -> int:
    """Warren's settings; with an app (``--app`` or ``WARREN_APP``), the app's own too."""
    if args.markdown:
        print(settings_markdown())
        return 0
    settings = Settings(**({"app": args.app} if getattr(args, "app", None) else {}))
    shown: dict[str, Any] = masked(settings)
    app = load_app(settings.app)
    if app.settings is not None:
        shown = {"warren": shown, "app": masked(app.build_settings())}
    print(json.dumps(shown, indent=2))
    return 0
