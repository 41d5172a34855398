"""compose.yaml: valid Compose, and wired to what the code really accepts.

The Compose Specification's JSON schema is vendored next to this file
(compose-spec.schema.json): the compose-spec project's ``schema/compose-spec.json``
(Apache-2.0) as shipped in the npm package ``dclint`` 3.1.0
(``schemas/compose.schema.json``), so validation needs no network. Beyond the
schema, every Warren service's command goes through the real CLI parser and
its environment through the settings model, so renaming a setting or a
command breaks this test. test_compose_run.py then runs the services.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest

from examples.demo.settings import DemoSettings
from tests.demo import CATALOG
from tests.deploy.common import (
    COMPOSE,
    REPO,
    demo_settings_from,
    json_array,
    load_yaml,
    parse_command,
    read_dockerfile,
    settings_from,
)
from tests.deploy.test_rabbitmq import conf_values, script_policies
from warren.service.http.auth import DEV_KEY
from warren.service.keys_cli import entry

SCHEMA = json.loads((REPO / "tests" / "deploy" / "compose-spec.schema.json").read_text())
WARREN_IMAGE = "warren:local"
# Credentials compose.yaml may contain: the local defaults of each image, nothing else.
LOCAL_DEFAULTS = {
    "broker password": "guest",
    "DEMO_WEBHOOK_SIGNING_SECRET": "compose-laptop-only",
    "POSTGRES_PASSWORD": "warren",
    # The gateway's key is the dev-only one whose token the README prints (`warren dev`'s).
    "WARREN_API_KEYS": json.dumps([entry(DEV_KEY)]),
}
SMTP_CATCHER_PORT = 1025  # mailpit's SMTP port


def compose() -> dict[str, Any]:
    document: dict[str, Any] = load_yaml(COMPOSE)
    return document


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def warren_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services().items() if s.get("image") == WARREN_IMAGE}


def consumers() -> dict[str, dict[str, Any]]:
    """Consumer services by the queue they consume."""
    found: dict[str, dict[str, Any]] = {}
    for service in warren_services().values():
        args = parse_command(service["command"])
        if args.command == "consume":
            assert args.queue not in found, f"two services consume {args.queue}"
            found[args.queue] = service
    return found


def service_env(service: dict[str, Any]) -> dict[str, str]:
    """What a Warren container starts with: the image's ENV, then the service's environment."""
    env = {k: v for k, v in read_dockerfile().env().items() if k.startswith("WARREN_")}
    environment = service.get("environment", {})
    assert isinstance(environment, dict), "environment as a mapping, so merges work"
    env.update({k: str(v) for k, v in environment.items()})
    return env


def seconds(duration: str) -> float:
    """A Compose duration such as ``45s`` or ``1m30s``."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    errors = list(jsonschema.Draft7Validator(SCHEMA).iter_errors(compose()))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("services", "gateway", "restart_policy"), "always"),  # not a service key
        (("services", "gateway", "ports"), "8080:8080"),  # must be a list
        (("services", "gateway", "depends_on", "rabbitmq", "condition"), "healthy"),
    ],
)
def test_schema_validation_catches_mistakes(path: tuple[str, ...], value: Any) -> None:
    """A control: the schema really constrains services (the check above means something)."""
    broken = copy.deepcopy(compose())
    target = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert list(jsonschema.Draft7Validator(SCHEMA).iter_errors(broken))


def test_one_gateway_and_one_consumer_service_per_queue() -> None:
    commands = [parse_command(s["command"]).command for s in warren_services().values()]
    assert commands.count("gateway") == 1
    assert sorted(consumers()) == sorted(CATALOG.queues)
    assert {s["build"]["dockerfile"] for s in warren_services().values()} == {"deploy/Dockerfile"}
    assert json_array(read_dockerfile().final.all("ENTRYPOINT")[0]) == ["warren"]


@pytest.mark.parametrize("name", sorted(warren_services()))
def test_warren_service_environment_is_settings(name: str) -> None:
    service = warren_services()[name]
    parse_command(service["command"])
    settings = settings_from(service_env(service))  # names and values, as the process sees them
    assert settings.http_host == "0.0.0.0", "reachable from other containers"
    # The broker, the trace collector and the SMTP catcher are services of this file.
    broker = urlsplit(settings.broker_url)
    assert broker.hostname == "rabbitmq" and broker.port == 5672
    assert broker.password == LOCAL_DEFAULTS["broker password"]
    assert settings.otel_endpoint == "http://jaeger:4318"
    assert settings.app == "examples.demo.tasks"
    demo = demo_settings_from(service_env(service))
    assert demo.smtp_host == "smtp" and demo.smtp_port == SMTP_CATCHER_PORT
    assert (
        demo.webhook_signing_secret.get_secret_value()
        == (LOCAL_DEFAULTS["DEMO_WEBHOOK_SIGNING_SECRET"])
    )
    assert settings.otel_service_name == f"warren-{name}"
    depends = service["depends_on"]
    assert depends["rabbitmq"] == {"condition": "service_healthy"}
    assert service["restart"] in ("unless-stopped", "always")


def test_warren_services_use_quorum_queues_with_the_policys_delivery_limit(
    tmp_path: Path,
) -> None:
    """Quorum queues, as on Kubernetes; one type for all (a gateway and a consumer of other
    types could not both declare a queue), and the limit the policy script sets."""
    [work] = script_policies(tmp_path)
    for name, service in warren_services().items():
        settings = settings_from(service_env(service))
        assert settings.queue_type == "quorum", name
        assert settings.delivery_limit == work["definition"]["delivery-limit"], name


def test_gateway_publishes_its_port_and_probes_readiness() -> None:
    [gateway] = [
        s for s in warren_services().values() if parse_command(s["command"]).command == "gateway"
    ]
    settings = settings_from(service_env(gateway))
    assert gateway["ports"] == [f"{settings.http_port}:{settings.http_port}"]
    probe = " ".join(gateway["healthcheck"]["test"])
    assert "WARREN_HTTP_PORT" in probe and "/readyz" in probe
    assert "WARREN_HTTP_PORT" in gateway["environment"]
    # Its working directory (the image's WORKDIR, which the image user owns) is a volume.
    [workdir] = read_dockerfile().final.all("WORKDIR")
    assert f"gateway-data:{workdir}" in gateway["volumes"]


@pytest.mark.parametrize("queue", sorted(CATALOG.queues))
def test_consumer_is_scalable_and_drains_before_docker_kills_it(queue: str) -> None:
    service = consumers()[queue]
    settings = settings_from(service_env(service))
    # --scale needs services that claim nothing unique on the host.
    assert "ports" not in service and "container_name" not in service
    # Docker's SIGKILL comes stop_grace_period after SIGTERM (default 10 s).
    assert seconds(service["stop_grace_period"]) > settings.consumer_grace_seconds
    probe = " ".join(service["healthcheck"]["test"])
    assert "WARREN_HEALTH_PORT" in probe and "/readyz" in probe
    assert "WARREN_HEALTH_PORT" in service["environment"] and settings.health_port > 0


def test_every_service_has_a_healthcheck_and_a_restart_policy() -> None:
    for name, service in services().items():
        check = service.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name}: no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert service.get("restart") in ("unless-stopped", "always", "on-failure"), name


def test_dependencies_exist_and_wait_for_health_where_it_matters() -> None:
    all_services = services()
    for name, service in all_services.items():
        for dependency, how in service.get("depends_on", {}).items():
            assert dependency in all_services, f"{name} depends on unknown {dependency}"
            if how["condition"] == "service_healthy":
                assert "healthcheck" in all_services[dependency]
    assert consumers()["email"]["depends_on"]["smtp"] == {"condition": "service_healthy"}


def test_jaeger_receives_otlp_over_http() -> None:
    jaeger = services()["jaeger"]
    assert jaeger["image"].startswith("jaegertracing/all-in-one:")
    assert jaeger["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    assert "4318:4318" in jaeger["ports"] and "16686:16686" in jaeger["ports"]
    for service in warren_services().values():
        ui = settings_from(service_env(service)).jaeger_ui_url
        assert ui == "http://localhost:16686"


def test_rabbitmq_loads_the_deploy_config_and_applies_the_policies() -> None:
    rabbitmq = services()["rabbitmq"]
    assert rabbitmq["image"].endswith("-management")  # the UI, and rabbitmq-diagnostics
    assert rabbitmq["hostname"] == "rabbitmq"  # the node name, so the data volume is reused
    mounts = {}
    for volume in rabbitmq["volumes"]:
        source, target, *_ = volume.split(":")
        mounts[target] = source
    assert mounts["/var/lib/rabbitmq"] in compose()["volumes"]
    conf = next(s for t, s in mounts.items() if t.startswith("/etc/rabbitmq/conf.d/"))
    assert (REPO / conf).resolve() == REPO / "deploy" / "rabbitmq" / "rabbitmq.conf"
    [hook] = rabbitmq["post_start"]
    script = next(t for t, s in mounts.items() if s.endswith("policies.sh"))
    assert (REPO / mounts[script]).is_file() and hook["command"] == ["sh", script]
    # The consumer timeout the broker gets is the one Warren's consumers check against.
    timeout_ms = float(conf_values((REPO / conf).read_text())["consumer_timeout"])
    for service in warren_services().values():
        settings = settings_from(service_env(service))
        assert settings.broker_consumer_timeout_seconds * 1000 == timeout_ms


def test_bind_mounts_and_named_volumes_exist() -> None:
    declared = set(compose()["volumes"])
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name}: {source} is missing"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"


def test_media_consumer_writes_to_a_volume_the_image_user_owns() -> None:
    media = consumers()["media"]
    root = str(demo_settings_from(service_env(media)).media_root)
    assert any(v.split(":")[1] == root for v in media["volumes"])
    assert root in " ".join(read_dockerfile().final.all("RUN"))  # created and chowned there


def test_postgres_is_optional_and_not_wired_to_warren_yet() -> None:
    postgres = services()["postgres"]
    assert postgres["profiles"] == ["postgres"]
    assert postgres["environment"]["POSTGRES_PASSWORD"] == LOCAL_DEFAULTS["POSTGRES_PASSWORD"]
    for name, service in services().items():
        if name != "postgres":
            assert "profiles" not in service, f"{name} must start with a plain `up`"
            assert "postgres" not in service.get("depends_on", {})
            assert "postgres" not in json.dumps(service.get("environment", {}))


def test_no_credentials_beyond_the_local_defaults() -> None:
    secretish = re.compile(r"PASS|SECRET|TOKEN|KEY", re.IGNORECASE)
    for name, service in services().items():
        for key, value in service.get("environment", {}).items():
            if secretish.search(key):
                assert LOCAL_DEFAULTS.get(key) == str(value), f"{name}: {key}"
            for url in re.findall(r"\w+://[^\s]+", str(value)):
                password = urlsplit(url).password
                assert password in (None, LOCAL_DEFAULTS["broker password"]), f"{name}: {key}"


def test_every_setting_default_left_in_place_is_a_local_default() -> None:
    """Sanity of the comparison above: the settings default secret is not a real secret."""
    default = DemoSettings.model_fields["webhook_signing_secret"].default
    assert default.get_secret_value() == "change-me"  # refused by consumers outside dev


def test_schedulers_share_the_gateways_store_and_probe_readiness() -> None:
    [(name, scheduler)] = [
        (n, s)
        for n, s in warren_services().items()
        if parse_command(s["command"]).command == "scheduler"
    ]
    assert name == "scheduler" and scheduler["deploy"]["replicas"] == 2  # one leads
    assert "ports" not in scheduler and "container_name" not in scheduler  # replicas coexist
    settings = settings_from(service_env(scheduler))
    probe = " ".join(scheduler["healthcheck"]["test"])
    assert "WARREN_HEALTH_PORT" in probe and "/readyz" in probe and settings.health_port > 0
    # The same store as the gateway: its URL, in the same mounted working directory.
    [gateway] = [
        s for s in warren_services().values() if parse_command(s["command"]).command == "gateway"
    ]
    assert settings.store_url == settings_from(service_env(gateway)).store_url
    [workdir] = read_dockerfile().final.all("WORKDIR")
    assert f"gateway-data:{workdir}" in scheduler["volumes"] and settings.store_url.startswith(
        "sqlite:///var/"
    )  # relative: under the working directory
