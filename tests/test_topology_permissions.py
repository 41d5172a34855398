"""``warren topology permissions`` and passive declaration (``declare_topology=false``).

The end-to-end proof (real users on a private node) is ``tests/faults/test_permissions.py``;
these check the regexes name exactly the intended objects, and that a process that may not
declare refuses to start, naming what is missing, when the topology was never applied.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from aio_pika.abc import AbstractChannel

from tests.demo import CATALOG
from tests.processes import REPO
from warren.service import topology
from warren.service.errors import ConfigurationError
from warren.service.settings import Settings

NS = topology.Names("shop-1")


def matches(pattern: str) -> set[str]:
    """Which of the namespace's objects (and a few look-alikes) a RabbitMQ regex admits."""
    shape = topology.build(Settings(namespace=NS.namespace), CATALOG.queues)
    names = {e.name for e in shape.exchanges} | {q.name for q in shape.queues}
    names |= {"shop-1.tasks2", "shop-12.tasks", "other.shop-1.tasks", "shop-1"}
    return {n for n in names if re.search(pattern, n)}


def test_the_gateway_publishes_tasks_and_cancellations_reads_recorder_and_dead_letters() -> None:
    granted = topology.permissions(NS, "gateway")
    assert matches(granted.configure) == set()
    # The top of the delay ladder takes delayed tasks.
    assert matches(granted.write) == {"shop-1.tasks", "shop-1.control", "shop-1.delay.21"}
    dead = {f"shop-1.{q}.dead" for q in CATALOG.queues}
    assert matches(granted.read) == {"shop-1.events.recorder", "shop-1.control.due", *dead}


def test_a_consumer_reads_only_its_queues_and_publishes_only_what_it_settles_with() -> None:
    granted = topology.permissions(NS, "consumer", ["email"])
    assert matches(granted.configure) == set()
    assert matches(granted.write) == {
        "shop-1.retry",
        "shop-1.dead",
        "shop-1.events",
        "shop-1.control",
    }
    assert matches(granted.read) == {"shop-1.email", "shop-1.control.log"}
    with pytest.raises(ValueError, match="queues"):
        topology.permissions(NS, "consumer", [])


def test_the_scheduler_reads_its_leader_queue_and_publishes_ticks_and_its_token() -> None:
    granted = topology.permissions(NS, "scheduler")
    assert matches(granted.configure) == set()
    # Ticks and the token go to the work exchange; never the default exchange (every queue).
    assert matches(granted.write) == {"shop-1.tasks"}
    assert not re.search(granted.write, "amq.default")
    assert matches(granted.read) == {"shop-1.scheduler.leader"}


def test_deploy_may_do_anything_inside_the_namespace_only() -> None:
    granted = topology.permissions(NS, "deploy")
    shape = topology.build(Settings(namespace=NS.namespace), CATALOG.queues)
    everything = {e.name for e in shape.exchanges} | {q.name for q in shape.queues}
    assert matches(granted.configure) == everything | {"shop-1.tasks2"}
    assert granted.configure == granted.write == granted.read


def test_the_cli_prints_a_definitions_fragment() -> None:
    args = ["--role", "consumer", "--queue", "diag", "--user", "w-diag", "--vhost", "prod"]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "warren",
            "topology",
            "permissions",
            *args,
            "--format",
            "json",
        ],
        cwd=REPO,
        env={"WARREN_NAMESPACE": NS.namespace, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (entry,) = json.loads(out)["permissions"]
    granted = topology.permissions(NS, "consumer", ["diag"])
    assert entry == {"user": "w-diag", "vhost": "prod", **vars(granted)}


async def test_without_declaring_a_missing_topology_is_refused_by_name(
    settings: Settings, channel: AbstractChannel
) -> None:
    passive = settings.model_copy(update={"declare_topology": False})
    with pytest.raises(ConfigurationError, match=r"exchange '.*\.tasks' does not exist"):
        await topology.declare(channel, topology.build(passive, ["diag"]))


async def test_without_declaring_an_applied_topology_is_found_and_left_alone(
    settings: Settings, channel: AbstractChannel
) -> None:
    applied = await topology.declare(channel, topology.build(settings, ["diag"]))
    passive = topology.build(settings.model_copy(update={"declare_topology": False}), ["diag"])
    assert passive.passive and not topology.build(settings, ["diag"]).passive
    checked = await topology.declare(channel, passive)
    assert set(checked.queues) == set(applied.queues)
    assert set(checked.exchanges) == set(applied.exchanges)
