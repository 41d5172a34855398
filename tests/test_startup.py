"""Start-up refuses what cannot work; topology is idempotent; the README documents the code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from aio_pika.abc import AbstractChannel
from pydantic import BaseModel

from tests.conftest import make_settings
from tests.demo import CATALOG, REGISTRY
from tests.support import queue_counts
from warren.consumers.registry import Registry, handles
from warren.consumers.runner import Consumer
from warren.service import topology
from warren.service.cli import main, settings_markdown
from warren.service.contracts import TaskContract
from warren.service.errors import ConfigurationError
from warren.service.settings import Settings

README = Path(__file__).resolve().parent.parent / "README.md"


class Nothing(BaseModel):
    pass


orphan = TaskContract("test.orphan", "test", Nothing)
slow = TaskContract("test.slow", "test", Nothing, timeout_seconds=60, timeout_cap_seconds=1800)


def test_consumer_refuses_a_queue_with_a_task_type_without_handler(settings: Settings) -> None:
    with pytest.raises(ConfigurationError, match=r"no handler for test\.orphan"):
        Consumer(settings, CATALOG.extended([orphan]), REGISTRY, "test")


def test_consumer_refuses_an_unknown_queue(settings: Settings) -> None:
    with pytest.raises(ConfigurationError, match="no task type uses queue"):
        Consumer(settings, CATALOG, REGISTRY, "nope")


def test_consumer_refuses_a_timeout_not_below_the_broker_consumer_timeout() -> None:
    @handles(slow)
    async def run_slow(payload: Nothing, ctx: object) -> None:
        return None

    registry = Registry((run_slow,))
    with pytest.raises(ConfigurationError, match="consumer timeout"):
        Consumer(make_settings(), CATALOG.extended([slow]), registry, "test")
    # Raising the broker's timeout (and telling Warren) makes it acceptable.
    settings = make_settings(broker_consumer_timeout_seconds=3600)
    Consumer(settings, CATALOG.extended([slow]), registry, "test")


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
async def test_declaring_twice_is_a_no_op(channel: AbstractChannel, queue_type: str) -> None:
    settings = make_settings(queue_type=queue_type, max_queue_length=1000)
    shape = topology.build(settings, ["diag"])
    try:
        await topology.declare(channel, shape)
        await topology.declare(channel, shape)  # same arguments: no PRECONDITION_FAILED
        for spec in shape.queues:
            assert await queue_counts(channel, spec.name) == (0, 0)
    finally:
        await topology.delete(channel, shape)


def test_every_name_starts_with_the_namespace(settings: Settings) -> None:
    shape = topology.build(settings, CATALOG.queues)
    names = [e.name for e in shape.exchanges] + [q.name for q in shape.queues]
    assert all(n.startswith(settings.namespace + ".") for n in names)
    assert len(names) == len(set(names))
    assert {b.queue for b in shape.bindings} == {q.name for q in shape.queues}


def test_topology_export_prints_definitions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["topology", "export", "--app", "examples.demo.tasks"]) == 0
    definitions = json.loads(capsys.readouterr().out)
    shape = topology.build(Settings(), CATALOG.queues)
    assert definitions == shape.to_definitions()


def test_readme_configuration_table_matches_the_settings_model() -> None:
    text = README.read_text()
    found = re.search(r"<!-- settings:start -->\n(.*?)\n<!-- settings:end -->", text, re.S)
    assert found, "README lacks the generated settings table"
    assert found.group(1) == settings_markdown(), "run: warren settings --markdown"
