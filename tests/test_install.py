"""``pip install warren`` resolves with the pip a fresh Python 3.11 venv ships, and the newest.

The first round's dependency ranges made the older resolver give up (two contrib
OpenTelemetry packages pinning different ``opentelemetry-instrumentation``
versions); only a newer pip found a way. A user's first command must not fail.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import REPO

pytestmark = pytest.mark.slow


def fresh_venv(where: Path, *, newest_pip: bool) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=120)
    pip = where / "bin" / "pip"
    if newest_pip:
        subprocess.run(
            [str(pip), "install", "--quiet", "--upgrade", "pip"], check=True, timeout=300
        )
    return pip


@pytest.mark.parametrize("newest_pip", [False, True], ids=["bundled-pip", "newest-pip"])
def test_the_package_resolves_in_a_clean_venv(tmp_path: Path, newest_pip: bool) -> None:
    pip = fresh_venv(tmp_path / "venv", newest_pip=newest_pip)
    done = subprocess.run(
        [str(pip), "install", "--dry-run", "--quiet", f"{REPO}[uvloop,examples]"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
