"""deploy/rabbitmq: generated definitions that cannot drift, and the broker settings Warren needs.

The definitions files are the output of ``warren topology export`` (the
classic flavour for one node, the quorum flavour for the cluster); this test
runs the real command and compares byte for byte. deploy/rabbitmq/README.md
has the command that regenerates them. The policy script runs for real, with a
stand-in ``rabbitmqctl`` that records its arguments, and its pattern is
matched against the queue names ``warren.service.topology`` makes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.demo import CATALOG
from tests.deploy.common import RABBITMQ, REPO
from warren.service import topology
from warren.service.settings import Settings

# Definitions file → the WARREN_* environment `warren topology export` runs with.
# The definitions are those of the example app, which the deploy files run (WARREN_APP).
APP = {"WARREN_APP": "examples.demo.tasks"}
FLAVOURS = {
    "definitions.json": APP,
    "definitions.quorum.json": {**APP, "WARREN_QUEUE_TYPE": "quorum"},
}
# Policy keys RabbitMQ accepts for queues (the subset a Warren policy may use).
POLICY_KEYS = {
    "max-length": int,
    "max-length-bytes": int,
    "overflow": str,
    "delivery-limit": int,
    "queue-leader-locator": str,
    "message-ttl": int,
    "expires": int,
}
OVERFLOWS = {"drop-head", "reject-publish", "reject-publish-dlx"}


# Variables policies.sh reads besides WARREN_*: a test sets them, never inherits them.
POLICY_VARIABLES = ("RABBITMQ_VHOST", "WORK_QUEUE_MAX_LENGTH")


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("WARREN_") and k not in POLICY_VARIABLES
    }
    env.update(extra)
    return env


def warren_command() -> list[str]:
    """The installed ``warren`` entry point next to this interpreter, as a user runs it."""
    script = Path(sys.executable).parent / "warren"
    return [str(script)] if script.exists() else [sys.executable, "-m", "warren"]


@pytest.mark.slow  # starts `warren`
@pytest.mark.parametrize("name", sorted(FLAVOURS))
def test_committed_definitions_are_the_export_of_the_code(name: str) -> None:
    done = subprocess.run(
        [*warren_command(), "topology", "export"],
        env=clean_env(**FLAVOURS[name]),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    committed = (RABBITMQ / name).read_text()
    assert done.stdout == committed, (
        f"deploy/rabbitmq/{name} is stale: regenerate it with the command in "
        "deploy/rabbitmq/README.md"
    )


@pytest.mark.parametrize("name", sorted(FLAVOURS))
def test_definitions_are_the_default_namespace_in_their_flavour(name: str) -> None:
    definitions = json.loads((RABBITMQ / name).read_text())
    queue_type = FLAVOURS[name].get("WARREN_QUEUE_TYPE", "classic")
    names = topology.Names(Settings().namespace)
    types = {q["name"]: q["arguments"]["x-queue-type"] for q in definitions["queues"]}
    for queue in CATALOG.queues:
        # The work queue, its retry tiers and its dead letters: all of the flavour's type.
        own = {n: t for n, t in types.items() if n.startswith(names.work_queue(queue))}
        assert names.work_queue(queue) in own and names.dead_queue(queue) in own
        assert set(own.values()) == {queue_type}, own


def rabbitmq_conf() -> dict[str, str]:
    return conf_values((RABBITMQ / "rabbitmq.conf").read_text())


def conf_values(text: str) -> dict[str, str]:
    """``key = value`` lines of a rabbitmq.conf (sysctl format), comments dropped."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not a rabbitmq.conf line: {raw!r}"
        values[key.strip()] = value.strip()
    return values


def test_consumer_timeout_is_the_one_consumers_check_against() -> None:
    """Consumers refuse task timeouts not below WARREN_BROKER_CONSUMER_TIMEOUT_SECONDS."""
    conf = rabbitmq_conf()
    assert float(conf["consumer_timeout"]) == Settings().broker_consumer_timeout_seconds * 1000
    longest = max(c.timeout_cap_seconds for c in CATALOG.values())
    assert longest * 1000 < int(conf["consumer_timeout"])


# --- policies.sh -------------------------------------------------------------------------------


def run_policies(tmp_path: Path, **env: str) -> list[list[str]]:
    """Run policies.sh with a ``rabbitmqctl`` that only records its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    record = tmp_path / "calls.jsonl"
    fake = bin_dir / "rabbitmqctl"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"with open({str(record)!r}, 'a') as f:\n"
        "    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    fake.chmod(0o755)
    environment = clean_env(**env)
    environment["PATH"] = f"{bin_dir}{os.pathsep}{environment.get('PATH', '')}"
    subprocess.run(["sh", str(RABBITMQ / "policies.sh")], env=environment, check=True, timeout=30)
    return [json.loads(line) for line in record.read_text().splitlines()]


def set_policies(calls: list[list[str]]) -> list[dict[str, Any]]:
    """Each ``rabbitmqctl set_policy`` call as the fields of a policy."""
    policies = []
    for call in calls:
        if call[0] != "set_policy":
            continue
        options = dict(zip(call[1:-3:2], call[2:-3:2], strict=True))
        name, pattern, definition = call[-3:]
        policies.append(
            {
                "name": name,
                "pattern": pattern,
                "vhost": options.get("--vhost", "/"),
                "applyTo": options.get("--apply-to", "all"),
                "priority": int(options.get("--priority", "0")),
                "definition": json.loads(definition),
            }
        )
    return policies


def script_policies(tmp_path: Path, **env: str) -> list[dict[str, Any]]:
    return set_policies(run_policies(tmp_path, **env))


def test_policy_script_is_valid_sh() -> None:
    subprocess.run(["sh", "-n", str(RABBITMQ / "policies.sh")], check=True, timeout=10)


def test_policy_script_waits_for_the_node_then_sets_valid_policies(tmp_path: Path) -> None:
    calls = run_policies(tmp_path)
    assert calls[0] == ["await_startup"]  # compose runs it as soon as the container starts
    policies = set_policies(calls)
    assert policies
    for policy in policies:
        assert policy["applyTo"] == "queues"
        for key, value in policy["definition"].items():
            assert key in POLICY_KEYS, f"{key}: not a queue policy key"
            assert isinstance(value, POLICY_KEYS[key]), (key, value)
        if "overflow" in policy["definition"]:
            assert policy["definition"]["overflow"] in OVERFLOWS


@pytest.mark.parametrize("namespace", ["warren", "shop-2"])
@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_work_policy_matches_exactly_the_work_queues(
    tmp_path: Path, namespace: str, queue_type: str
) -> None:
    [work] = script_policies(tmp_path, WARREN_NAMESPACE=namespace)
    settings = Settings(namespace=namespace, queue_type=queue_type)
    shape = topology.build(settings, CATALOG.queues)
    matched = {q.name for q in shape.queues if re.search(work["pattern"], q.name)}
    assert matched == {shape.names.work_queue(q) for q in CATALOG.queues}
    # Nothing of another namespace that merely shares the prefix.
    assert not re.search(work["pattern"], f"{namespace}x.diag")
    assert not re.search(work["pattern"], f"other.{namespace}.diag")


def test_work_policy_agrees_with_the_queue_arguments(tmp_path: Path) -> None:
    """Where a quorum work queue's argument and the policy both speak, they say the same."""
    [work] = script_policies(tmp_path)
    definition = work["definition"]
    assert definition["overflow"] == "reject-publish"  # the gateway's 503, not a silent drop
    assert definition["delivery-limit"] == Settings().delivery_limit
    quorum = topology.build(Settings(queue_type="quorum"), CATALOG.queues)
    work_queue = next(q for q in quorum.queues if q.name == quorum.names.work_queue("diag"))
    assert work_queue.args["x-overflow"] == definition["overflow"]
    assert work_queue.args["x-delivery-limit"] == definition["delivery-limit"]


def test_policy_script_takes_its_parameters_from_the_environment(tmp_path: Path) -> None:
    [work] = script_policies(
        tmp_path,
        WARREN_NAMESPACE="shop",
        RABBITMQ_VHOST="prod",
        WORK_QUEUE_MAX_LENGTH="500",
        WARREN_DELIVERY_LIMIT="7",
    )
    assert work["name"] == "shop-work"
    assert work["vhost"] == "prod"
    assert work["definition"]["max-length"] == 500
    assert work["definition"]["delivery-limit"] == 7
