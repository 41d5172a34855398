"""Fixtures of the fault suite: a private RabbitMQ node per session, processes per test.

The node is started once (about 6 s) and shared by the single-node scenarios,
each in its own namespace; a scenario that crashes or stops it starts it
again before it ends, and every scenario first makes sure it is up, so one
failure does not cascade. At the end of the session it is stopped by name and
its directory deleted. The machine's main node is never addressed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.broker import RabbitNode
from tests.faults.harness import Harness, open_harness
from tests.faults.load import SCALE
from tests.faults.procs import Spawner

MakeHarness = Callable[..., Awaitable[Harness]]
DEFAULT_TIMEOUT = 120.0  # pyproject's per-test timeout


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A soak (``WARREN_FAULTS_SCALE`` > 1) gives each fault test proportionally more time."""
    if SCALE <= 1:
        return
    for item in items:
        if item.get_closest_marker("faults") is None:
            continue
        marker = item.get_closest_marker("timeout")
        base = float(marker.args[0]) if marker and marker.args else DEFAULT_TIMEOUT
        item.add_marker(pytest.mark.timeout(base * SCALE))


@pytest.fixture(scope="session")
def node() -> Iterator[RabbitNode]:
    private = RabbitNode.create()
    assert private.amqp_port != 5672 and not private.name.startswith("rabbit@")
    try:
        private.start()
        yield private
    finally:
        private.destroy()


@pytest.fixture
def spawner(tmp_path: Path) -> Iterator[Spawner]:
    """Children of one test; every one is SIGKILLed by PID at teardown."""
    spawned = Spawner(tmp_path)
    try:
        yield spawned
    finally:
        spawned.kill_all()


@pytest.fixture
def harness(node: RabbitNode, spawner: Spawner, request: pytest.FixtureRequest) -> MakeHarness:
    """``await harness(**settings_overrides)``: a scenario's world on the private node."""

    async def make(**overrides: Any) -> Harness:
        return await open_harness(node, spawner, request.node.name, **overrides)

    return make
