"""The deployment files in deploy/ (issue 18 point 2), checked where no Docker
engine or cluster exists: the compose file against the Compose Specification's
JSON Schema (vendored in deploy/schemas/), the Kubernetes manifests against the
schemas `kubernetes-validate` ships, the Dockerfile and the systemd units by
their instructions. Every LEADFLOW_* name in them must be a real setting and
every `leadflow` command and option they run a real one, so a renamed setting
or command breaks this test, not a deployment."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any
from xml.etree import ElementTree

import jsonschema
import kubernetes_validate
import pytest
import typer.main
import yaml

from pipeline.config.settings import PROJECT_ROOT, Settings
from pipeline.entrypoints.cli import app

DEPLOY = PROJECT_ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
KUBERNETES_VERSION = "1.30"
"""The oldest Kubernetes still widely run that the manifests must fit."""
CLUSTER_CONFIG = "/etc/clickhouse-server/config.d/cluster.xml"
SETTING = re.compile(r"\bLEADFLOW_([A-Z0-9_]+)")
CLI = typer.main.get_command(app)


def compose(name: str = "compose.yaml") -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / name).read_text())


def manifests() -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted(KUBERNETES.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions (keyword, arguments), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (keyword.upper(), rest.strip())
        for keyword, _, rest in (line.partition(" ") for line in lines)
        if keyword and not keyword.startswith("#")
    ]


def unit(name: str) -> dict[str, list[str]]:
    """A systemd unit's keys (section.key) with all their values, in order."""
    found: dict[str, list[str]] = {}
    section = ""
    for line in (DEPLOY / "systemd" / name).read_text().splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found.setdefault(f"{section}.{key}", []).append(value)
    return found


def assert_real_command(args: list[str]) -> None:
    """`leadflow ARGS` names a command and only options it has."""
    command = CLI.commands[args[0]]  # type: ignore[attr-defined]
    options = {opt for param in command.params for opt in getattr(param, "opts", [])}
    given = {arg for arg in args[1:] if arg.startswith("--")}
    assert given <= options, (args, options)


def test_every_leadflow_setting_named_in_deploy_is_a_real_one() -> None:
    names = {
        name.lower()
        for path in DEPLOY.rglob("*")
        if path.is_file() and path.suffix != ".json"
        for name in SETTING.findall(path.read_text())
    }
    assert names, "deploy/ names no setting"
    assert names <= set(Settings.model_fields), names - set(Settings.model_fields)


@pytest.mark.parametrize("name", ["compose.yaml", "compose.cluster.yaml"])
def test_the_compose_files_follow_the_compose_specification(name: str) -> None:
    schema = json.loads((DEPLOY / "schemas" / "compose-spec.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(compose(name))


def test_the_cluster_override_gives_the_worker_a_cluster_of_two_replicas_and_a_keeper() -> None:
    """compose.cluster.yaml on top of compose.yaml: the cluster the worker names is
    the one the servers' config defines, every host in it is a service, each
    replica has its own name and every server mounts the cluster config."""
    base, extra = compose()["services"], compose("compose.cluster.yaml")["services"]
    cluster_name = extra["worker"]["environment"]["LEADFLOW_CLICKHOUSE_CLUSTER"]
    config = ElementTree.parse(DEPLOY / "clickhouse-cluster" / "cluster.xml").getroot()
    servers = config.find("remote_servers")
    assert servers is not None
    (cluster,) = servers
    assert cluster.tag == cluster_name
    hosts = [r.findtext("host") for r in cluster.iter("replica")]
    assert len(hosts) == 2 and set(hosts) <= set(base) | set(extra)
    assert config.findtext("zookeeper/node/host") in extra
    replicas = []
    for service in hosts:
        mounts = [v.split(":")[:2] for v in extra[str(service)]["volumes"]]
        assert ["./clickhouse-cluster/cluster.xml", CLUSTER_CONFIG] in mounts, service
        (macros,) = [m for m, target in mounts if target.endswith("/macros.xml")]
        own = ElementTree.parse(DEPLOY / macros).getroot()
        replicas.append((own.findtext("macros/shard"), own.findtext("macros/replica")))
    assert len({shard for shard, _ in replicas}) == 1 and len(set(replicas)) == 2
    assert extra["clickhouse-2"]["image"] == base["clickhouse"]["image"]


def test_a_mistake_in_a_compose_file_is_found_by_the_schema() -> None:
    schema = json.loads((DEPLOY / "schemas" / "compose-spec.json").read_text())
    broken = compose()
    broken["services"]["worker"]["depends_on"]["kafka"]["condition"] = "service_ready"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate(broken)


def test_compose_runs_kafka_in_kraft_mode_the_worker_on_clickhouse_and_grafana_on_request() -> None:
    services = compose()["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert set(kafka["environment"]["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    worker = services["worker"]["environment"]
    assert worker["LEADFLOW_CLICKHOUSE_URL"].startswith("http://")
    assert "@clickhouse:8123/" in worker["LEADFLOW_CLICKHOUSE_URL"]
    assert worker["LEADFLOW_WAREHOUSE_SINK"] == "true"
    assert worker["LEADFLOW_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    assert services["grafana"]["profiles"] == ["grafana"]
    assert (
        "grafana-clickhouse-datasource" in services["grafana"]["environment"]["GF_INSTALL_PLUGINS"]
    )
    source = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "clickhouse.yaml").read_text()
    )["datasources"][0]
    assert source["type"] == "grafana-clickhouse-datasource"
    assert source["jsonData"]["host"] == "clickhouse"
    assert services["worker"]["image"] == services["crm-bridge"]["image"]
    assert_real_command(services["crm-bridge"]["command"])


def test_the_kubernetes_manifests_follow_the_kubernetes_schemas() -> None:
    docs = manifests()
    assert {d["kind"] for d in docs} == {
        "Namespace",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
    }
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml"
    )


def test_a_mistake_in_a_manifest_is_found_by_the_schema() -> None:
    (deployment,) = [
        d
        for d in manifests()
        if d["metadata"]["name"] == "leadflow-worker" and d["kind"] == "Deployment"
    ]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = (
        "/v1/ready"
    )
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_worker_deployment_is_ready_when_its_tables_are_and_reads_its_settings() -> None:
    docs = manifests()
    named = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    worker = named[("Deployment", "leadflow-worker")]["spec"]["template"]["spec"]
    (container,) = worker["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v1/health"
    assert worker["securityContext"]["runAsNonRoot"] is True
    sources = [next(iter(s.items())) for s in container["envFrom"]]
    assert ("configMapRef", {"name": "leadflow-settings"}) in sources
    assert ("secretRef", {"name": "leadflow-secrets"}) in sources
    assert ("ConfigMap", "leadflow-settings") in named and ("Secret", "leadflow-secrets") in named
    secret = named[("Secret", "leadflow-secrets")]["stringData"]
    config = named[("ConfigMap", "leadflow-settings")]["data"]
    assert "LEADFLOW_CLICKHOUSE_URL" in secret and "LEADFLOW_CLICKHOUSE_URL" not in config
    for deployment in (d for d in docs if d["kind"] == "Deployment"):
        for c in deployment["spec"]["template"]["spec"]["containers"]:
            assert_real_command(c["args"])


def test_the_image_runs_the_worker_as_a_user_with_a_health_check() -> None:
    steps = dockerfile()
    stages = [i for i, (keyword, _) in enumerate(steps) if keyword == "FROM"]
    final = steps[stages[-1] :]
    assert re.fullmatch(r"python:3\.\d+-slim\S*", final[0][1]), final[0]
    users = [args for keyword, args in final if keyword == "USER"]
    assert users and users[-1] not in {"root", "0"}
    last_user = max(i for i, (keyword, _) in enumerate(final) if keyword == "USER")
    assert all(keyword != "RUN" for keyword, _ in final[last_user:])  # nothing runs as root after
    (health,) = [args for keyword, args in final if keyword == "HEALTHCHECK"]
    assert "/v1/health" in health and " CMD " in f" {health} "
    entrypoint = json.loads(dict(final)["ENTRYPOINT"])
    command = json.loads(dict(final)["CMD"])
    assert entrypoint == ["leadflow"] and command == ["worker"]
    env = dict(final)["ENV"]
    assert "LEADFLOW_WEB_HOST=0.0.0.0" in env  # reachable from outside the container
    copied = {
        args.split()[0] for keyword, args in steps if keyword == "COPY" and "--from" not in args
    }
    allowed = {
        line[1:].rstrip("/")
        for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert copied <= allowed, copied - allowed  # the build context has what the image copies


@pytest.mark.parametrize(
    ("name", "command"),
    [("leadflow-worker.service", "worker"), ("leadflow-crm-bridge.service", "crm-bridge")],
)
def test_the_systemd_units_restart_on_failure_as_their_own_user(name: str, command: str) -> None:
    keys = unit(name)
    (start,) = keys["Service.ExecStart"]
    program, *args = shlex.split(start)
    assert program.endswith("/bin/leadflow") and args[0] == command
    assert_real_command(args)
    assert keys["Service.Restart"] == ["on-failure"]
    assert keys["Service.User"] != ["root"] and keys["Service.KillSignal"] == ["SIGTERM"]
    assert keys["Service.EnvironmentFile"] == ["/etc/leadflow/leadflow.env"]
    assert "LEADFLOW_STATE_DIR=/var/lib/leadflow" in keys["Service.Environment"]
    assert keys["Install.WantedBy"] == ["multi-user.target"]
