"""What the deployment tests share: reading the deploy files, and asking the code about them.

Every check of a deployment file goes back to the code it configures: a
command is parsed by the real ``warren`` argument parser, an environment
variable name must be a field of the settings model and its value must pass
that model's validation, a queue name must come from ``warren.service.topology``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from examples.demo.settings import DemoSettings
from warren.service.apps import load_app
from warren.service.cli import parser
from warren.service.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = REPO / "compose.yaml"
KUBERNETES = DEPLOY / "kubernetes"
RABBITMQ = DEPLOY / "rabbitmq"

SETTING_NAMES = frozenset(f"WARREN_{name.upper()}" for name in Settings.model_fields)
DEMO_SETTING_NAMES = frozenset(f"DEMO_{name.upper()}" for name in DemoSettings.model_fields)


# libyaml's loader when PyYAML has it (its wheels do): the pure-Python one is slow.
Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.cache
def load_yaml(path: Path) -> Any:
    """A YAML file's content, parsed once per run: callers must not modify it."""
    return yaml.load(path.read_text(), Loader=Loader)


@functools.cache
def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    """The documents of a multi-document YAML file, parsed once: callers must not modify them."""
    return [doc for doc in yaml.load_all(path.read_text(), Loader=Loader) if doc is not None]


def settings_from(env: Mapping[str, str]) -> Settings:
    """The settings a Warren process would build from ``env`` (and nothing else).

    Unknown ``WARREN_*`` names are refused here, although the model itself
    ignores them: a misspelt or renamed setting in a deploy file would
    otherwise be silently dropped.
    """
    unknown = {k for k in env if k.startswith("WARREN_")} - SETTING_NAMES
    assert not unknown, f"not settings of service/settings.py: {sorted(unknown)}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "environ", {k: str(v) for k, v in env.items()})
        settings = Settings()
    assert load_app(settings.app).catalog, "WARREN_APP names an importable app"
    return settings


def demo_settings_from(env: Mapping[str, str]) -> DemoSettings:
    """The example app's settings from ``env``; a misspelt ``DEMO_*`` name fails the test."""
    unknown = {k for k in env if k.startswith("DEMO_")} - DEMO_SETTING_NAMES
    assert not unknown, f"not settings of examples/demo/settings.py: {sorted(unknown)}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "environ", {k: str(v) for k, v in env.items()})
        return DemoSettings()


def parse_command(argv: list[str]) -> Any:
    """``warren <argv>`` through the real CLI parser; a bad command fails the test."""
    try:
        return parser().parse_args(argv)
    except SystemExit as exit_:  # argparse reports the error on stderr and exits 2
        raise AssertionError(f"`warren {shlex.join(argv)}` is not a valid command") from exit_


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        yield


# --- Dockerfile ------------------------------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


@dataclass
class Dockerfile:
    args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def env(self) -> dict[str, str]:
        """The final stage's ``ENV`` values (``KEY=value`` form), as a container starts with."""
        values: dict[str, str] = {}
        for line in self.final.all("ENV"):
            for item in shlex.split(line):
                key, sep, value = item.partition("=")
                assert sep, f"ENV {line!r}: use the KEY=value form"
                values[key] = value
        return values


def read_dockerfile(path: Path = DOCKERFILE) -> Dockerfile:
    """Instructions per stage, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0])
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif keyword == "ARG" and not stages:
            key, _, default = rest.partition("=")
            args[key] = default
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append((keyword, rest))
    return Dockerfile(args, stages)


def json_array(text: str) -> list[str]:
    """An exec-form (JSON array) instruction argument."""
    value = yaml.safe_load(text)
    assert isinstance(value, list), f"{text!r} is not in exec (JSON array) form"
    return [str(v) for v in value]
