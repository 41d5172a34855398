"""What ``pip install warren`` puts into a user's site-packages: one import name, ``warren``.

Two generic top-level modules (``service``, ``consumers``) would collide with
anyone else's; the wheel is built for real and its contents read.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.processes import REPO

pytestmark = pytest.mark.slow


# What a fresh clone would not have: a build from a copy without them is the build of main.
LOCAL_STATE = (".git", ".venv", "build", "*.egg-info", "var", "__pycache__", ".*_cache")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy: setuptools reuses ``build/`` and would pack files since removed."""
    source = tmp_path_factory.mktemp("source") / "warren"
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(*LOCAL_STATE))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [built] = out.glob("warren-*.whl")
    return built


def test_the_wheel_installs_exactly_one_import_name(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        [top_level] = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        declared = archive.read(top_level).decode().split()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"warren"}
    assert declared == ["warren"]


def test_the_wheel_holds_the_code_behind_the_links(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {
        "warren/__init__.py",
        "warren/service/cli.py",
        "warren/service/http/app.py",
        "warren/consumers/runner.py",
        "warren/consumers/handlers/diag.py",
    } <= names
    assert not [n for n in names if n.startswith("warren/examples") or "/tests/" in n]
