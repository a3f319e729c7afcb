"""deploy/k8s, offline: the manifests against their schemas, and against streamfn itself.

The core kinds are validated by kubernetes-validate against the Kubernetes API's schemas for the
version `make validate` pins (K8S_VERSION in the Makefile), strictly: an unknown field fails, as
`kubectl apply` (strict field validation) would refuse it. KEDA's kinds are validated against
the openAPIV3Schema of KEDA's CRDs, vendored in deploy/k8s/schemas, made strict the same way.
Then the manifests are checked against the code they run: the ConfigMap's keys are Settings
fields and its values valid settings, the probes ask paths the processes serve on the ports they
listen on, Redis and MLflow are where the ConfigMap looks for them, the training Job and
MLflow's server run commands their parsers take, the Ingress reaches the ingest Service, and
the ScaledObject scales the poller Deployment on the stream and group the ConfigMap names, as
far as docs/SCALING.md says. No cluster, no network; nothing waits.
"""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema
import kubernetes_validate
import pytest
import yaml
from fastapi.testclient import TestClient

from streamfn.app import create_app
from streamfn.cli import build_parser
from streamfn.cli.serve import ingest_alive
from streamfn.core import health
from streamfn.core.settings import Settings
from streamfn.local.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SCHEMAS = K8S / "schemas"
KUSTOMIZATION = K8S / "kustomization.yaml"
DOCKERFILE = ROOT / "Dockerfile"
MAKEFILE = ROOT / "Makefile"
NAMESPACE = "streamfn"
CONFIGMAP = "streamfn"
SECRET = "streamfn-secrets"
POLLER = "streamfn-poller"
INGEST = "streamfn-ingest"
TRAIN = "streamfn-train"
REDIS = "redis"
MLFLOW = "mlflow"
SCALING = ROOT / "docs" / "SCALING.md"
# The kinds that run pods, and those of them that run until stopped (and so have probes).
WORKLOADS = ("Deployment", "StatefulSet", "Job")
LONG_RUNNING = ("Deployment", "StatefulSet")
# Manifests kept beside the others but applied in place of one of them, not with them.
ALTERNATIVES = {"scaledobject-cluster.yaml": "scaledobject.yaml"}
KEDA_SCHEMAS = {
    "ScaledObject": "scaledobject.keda.sh-v1alpha1.yaml",
    "TriggerAuthentication": "triggerauthentication.keda.sh-v1alpha1.yaml",
}
# ConfigMap keys that may not be Settings fields yet (being added alongside these manifests): the
# key check skips these names only while Settings lacks them.
PENDING = {"STREAM_PARTITIONS", "REDIS_CLUSTER", "INGEST_WAIT_REPLICAS"}

Obj = dict[str, Any]


def documents(path: Path) -> list[Obj]:
    """The YAML documents of a file, empty ones dropped."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p != KUSTOMIZATION)


def applied_files() -> list[Path]:
    """The files kustomization.yaml applies."""
    return [K8S / name for name in yaml.safe_load(KUSTOMIZATION.read_text())["resources"]]


def objects(files: list[Path]) -> list[Obj]:
    return [doc for path in files for doc in documents(path)]


def is_keda(obj: Obj) -> bool:
    return obj["apiVersion"].startswith("keda.sh/")


def one(objs: list[Obj], kind: str, name: str) -> Obj:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} objects"
    return found[0]


def applied() -> list[Obj]:
    return objects(applied_files())


def configmap() -> dict[str, str]:
    return one(applied(), "ConfigMap", CONFIGMAP)["data"]


def make_variable(name: str) -> str:
    """A `NAME := value` of the Makefile, continuation lines joined."""
    text = MAKEFILE.read_text().replace("\\\n", " ")
    match = re.search(rf"^{name} := (.*)$", text, re.MULTILINE)
    assert match, f"the Makefile sets no {name}"
    return match[1].strip()


def strict(schema: Any) -> Any:
    """The schema with unknown fields refused, as strict field validation refuses them."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    if isinstance(out.get("properties"), dict) and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def keda_validator(kind: str, *, strict_fields: bool = True) -> jsonschema.Draft202012Validator:
    schema = yaml.safe_load((SCHEMAS / KEDA_SCHEMAS[kind]).read_text())
    schema = strict(schema) if strict_fields else schema
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def keda_errors(obj: Obj, *, strict_fields: bool = True) -> list[str]:
    validator = keda_validator(obj["kind"], strict_fields=strict_fields)
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)
    ]


def k8s_version() -> str:
    return make_variable("K8S_VERSION")


def containers(workload: Obj) -> list[Obj]:
    return workload["spec"]["template"]["spec"]["containers"]


def workloads(objs: list[Obj]) -> list[Obj]:
    """The objects that run pods: Deployments, StatefulSets, Jobs."""
    return [o for o in objs if o["kind"] in WORKLOADS]


def runs_streamfn(container: Obj) -> bool:
    """Whether a container runs the streamfn command (ingest, poll, train)."""
    return container.get("command", ["streamfn"])[0] == "streamfn"


def port_number(container: Obj, port: int | str) -> int:
    """A probe's or Service's port (a number, or the name of a containerPort) as a number."""
    if isinstance(port, int):
        return port
    numbers = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    assert numbers, f"container {container['name']} has no port named {port!r}"
    return numbers[0]


def option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def triggers(scaled: Obj) -> list[Obj]:
    return scaled["spec"]["triggers"]


# ---- every manifest parses, and the kustomization applies exactly the ones meant ----------------


def test_every_manifest_parses_and_is_applied_or_an_alternative() -> None:
    files = manifest_files()
    assert files, "no manifests in deploy/k8s"
    for path in files:
        docs = documents(path)
        assert docs, f"{path.name} holds no object"
        for obj in docs:
            assert {"apiVersion", "kind", "metadata"} <= obj.keys(), path.name
            assert obj["metadata"]["name"], path.name
            if obj["kind"] != "Namespace":
                assert obj["metadata"].get("namespace") == NAMESPACE, f"{path.name}: namespace"
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())
    assert kustomization["namespace"] == NAMESPACE
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed)), "a file is listed twice"
    assert set(listed) == {p.name for p in files} - set(ALTERNATIVES)
    assert set(ALTERNATIVES.values()) <= set(listed)
    names = [(o["kind"], o["metadata"]["name"]) for o in applied()]
    assert len(names) == len(set(names)), "two applied objects share a kind and name"


# ---- the core kinds against the Kubernetes API's schemas -----------------------------------------


def test_core_kinds_pass_kubernetes_validate_strictly() -> None:
    version = k8s_version()
    core = [path for path in manifest_files() if not any(map(is_keda, documents(path)))]
    # `make validate` runs the same check from the command line: it must list every core file.
    assert set(make_variable("K8S_CORE").split()) == {str(p.relative_to(ROOT)) for p in core}
    for path in core:
        for obj in documents(path):
            assert kubernetes_validate.validate(obj, version, strict=True)


def test_a_misspelt_or_mistyped_core_field_is_rejected() -> None:
    deployment = one(applied(), "Deployment", POLLER)
    misspelt = copy.deepcopy(deployment)
    container = containers(misspelt)[0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(misspelt, k8s_version(), strict=True)
    mistyped = copy.deepcopy(deployment)
    containers(mistyped)[0]["ports"][0]["containerPort"] = "nine thousand"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(mistyped, k8s_version(), strict=True)


# ---- KEDA's kinds against KEDA's CRD schemas ----------------------------------------------------


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: p.name)
def test_keda_kinds_pass_their_crd_schema(path: Path) -> None:
    for obj in filter(is_keda, documents(path)):
        assert obj["apiVersion"] == "keda.sh/v1alpha1"
        assert obj["kind"] in KEDA_SCHEMAS, f"no vendored schema for {obj['kind']}"
        assert keda_errors(obj) == [], f"{path.name}: {obj['kind']}/{obj['metadata']['name']}"


def test_a_broken_scaledobject_is_rejected() -> None:
    scaled = one(applied(), "ScaledObject", POLLER)
    misspelt = copy.deepcopy(scaled)
    misspelt["spec"]["minReplicasCount"] = misspelt["spec"].pop("minReplicaCount")
    assert any("minReplicasCount" in e for e in keda_errors(misspelt))
    # The CRD as published leaves unknown fields to the API server: strict() is what catches them.
    assert keda_errors(misspelt, strict_fields=False) == []
    unquoted = copy.deepcopy(scaled)
    triggers(unquoted)[0]["metadata"]["lagCount"] = 1000  # trigger metadata values are strings
    assert keda_errors(unquoted)
    nameless = copy.deepcopy(scaled)
    del nameless["spec"]["scaleTargetRef"]["name"]
    assert keda_errors(nameless)


# ---- the manifests against streamfn --------------------------------------------------------------


def test_configmap_keys_are_settings_fields_and_values_valid() -> None:
    data = configmap()
    assert all(isinstance(value, str) for value in data.values()), "ConfigMap values are strings"
    fields = set(Settings.model_fields)
    unknown = set(data) - fields
    assert unknown <= PENDING, f"not streamfn settings: {sorted(unknown - PENDING)}"
    # Every value is one streamfn accepts (a bad one would stop each process at start).
    settings = Settings(**data)
    for key in set(data) & fields:
        assert str(getattr(settings, key)).lower() == data[key].lower(), key
    if unknown:
        pytest.skip(f"not yet Settings fields (PENDING): {sorted(unknown)}")


def test_env_names_and_secret_refs() -> None:
    fields = set(Settings.model_fields)
    for workload in workloads(applied()):
        for container in filter(runs_streamfn, containers(workload)):
            assert container["envFrom"] == [{"configMapRef": {"name": CONFIGMAP}}]
            for variable in container.get("env", []):
                assert variable["name"] in fields, variable["name"]
                assert "value" not in variable, f"{variable['name']}: set it in the ConfigMap"
                ref = variable["valueFrom"]["secretKeyRef"]
                # The ingest listens beyond loopback: without its key it would not start.
                required = variable["name"] == "INGEST_API_KEY"
                assert ref == {"name": SECRET, "key": variable["name"], "optional": not required}
    # No Secret in the repository: only references to one the operator creates.
    assert not [o for o in objects(manifest_files()) if o["kind"] == "Secret"]
    ingest_env = {v["name"] for v in containers(one(applied(), "Deployment", INGEST))[0]["env"]}
    assert {"INGEST_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= ingest_env


def test_pods_are_hardened() -> None:
    uid = int(re.search(r"useradd .*--uid (\d+)", DOCKERFILE.read_text())[1])
    for workload in workloads(applied()):
        pod = workload["spec"]["template"]["spec"]
        name = workload["metadata"]["name"]
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == uid, f"{name}: the image's user"
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= container["resources"][bound].keys(), name
            if workload["kind"] in LONG_RUNNING:
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    assert {"httpGet", "exec"} & container[probe].keys(), f"{name}: {probe}"
            if container["image"].startswith("streamfn:"):
                mounts = {m["mountPath"] for m in container["volumeMounts"]}
                assert "/tmp" in mounts, f"{name}: a writable /tmp (MPLCONFIGDIR, downloads)"


def test_ingest_serves_what_its_probes_and_service_ask() -> None:
    objs = applied()
    deployment = one(objs, "Deployment", INGEST)
    (container,) = containers(deployment)
    command = container["command"]
    assert command[:2] == ["streamfn", "ingest"]
    image_cmd = re.findall(r"^CMD (.*)$", DOCKERFILE.read_text(), re.MULTILINE)[-1]
    assert command == yaml.safe_load(image_cmd), "the image's own command"
    port = int(option(command, "--port"))
    assert option(command, "--host") == "0.0.0.0"  # beyond loopback: the key is required
    ready = container["readinessProbe"]["httpGet"]
    assert port_number(container, ready["port"]) == port
    # The app itself with a key, its Redis down (a port nobody listens on): readiness follows
    # Redis, and asks for no key.
    settings = Settings(**{**configmap(), "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
                           "INGEST_API_KEY": "k"})  # fmt: skip
    with TestClient(create_app(settings)) as client:
        assert client.get(ready["path"]).status_code == 503, f"readiness: GET {ready['path']}"
        assert client.get("/no-such-path").status_code == 401  # closed unless opened
    # Startup and liveness ask the process's own server on METRICS_PORT: alive whatever Redis.
    metrics_port = int(configmap()["METRICS_PORT"])
    server = health.serve(0, ingest_alive, host="127.0.0.1")
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        for probe in ("startupProbe", "livenessProbe"):
            get = container[probe]["httpGet"]
            assert port_number(container, get["port"]) == metrics_port, probe
            assert httpx.get(base + get["path"], timeout=5).status_code == 200, probe
    finally:
        server.shutdown()
        server.server_close()
    service = one(objs, "Service", INGEST)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (service_port,) = service["spec"]["ports"]
    assert service_port["port"] == port
    assert port_number(container, service_port["targetPort"]) == port


def test_poller_serves_what_its_probes_ask() -> None:
    (container,) = containers(one(applied(), "Deployment", POLLER))
    command = container["command"]
    assert command == ["streamfn", "poll"]
    port = int(configmap()["METRICS_PORT"])  # --metrics-port is its CLI form
    probes = [container[p]["httpGet"] for p in ("startupProbe", "readinessProbe", "livenessProbe")]
    assert all(port_number(container, get["port"]) == port for get in probes)
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    # The poller's own server (streamfn.health), on a free port: each probe's path answers.
    server = health.serve(0, lambda: (True, {}), host="127.0.0.1")
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        for get in probes:
            assert httpx.get(base + get["path"], timeout=5).status_code == 200, get["path"]
        assert httpx.get(base + "/nothing", timeout=5).status_code == 404
    finally:
        server.shutdown()
        server.server_close()


def test_network_policies_select_the_pods_and_their_ports() -> None:
    objs = applied()
    policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
    for workload in workloads(objs):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        ports = {p["containerPort"] for c in containers(workload) for p in c.get("ports", [])}
        mine = [
            p for p in policies if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        ]
        assert mine, f"{workload['metadata']['name']}: no NetworkPolicy"
        rules = [rule for policy in mine for rule in policy["spec"].get("ingress", [])]
        allowed = {port["port"] for rule in rules for port in rule["ports"]}
        assert allowed == ports, workload["metadata"]["name"]


# ---- Redis, MLflow, training and the Ingress: where the ConfigMap and the Service look -----------


def service_port(service: Obj, name: str | int) -> Obj:
    found = [p for p in service["spec"]["ports"] if name in (p.get("name"), p["port"])]
    assert len(found) == 1, f"{service['metadata']['name']}: no port {name!r}"
    return found[0]


def serves(service: Obj, workload: Obj, port: int) -> None:
    """The Service selects the workload's pods and sends `port` to that container port."""
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items(), service["metadata"]["name"]
    (container,) = containers(workload)
    assert port_number(container, service_port(service, port)["targetPort"]) == port


def test_redis_is_where_the_configmap_and_keda_look() -> None:
    objs = applied()
    service = one(objs, "Service", REDIS)
    redis_set = one(objs, "StatefulSet", REDIS)
    url = urlsplit(Settings(**configmap()).REDIS_URL)
    # redis.streamfn.svc:6379, the name KEDA's trigger uses too (checked below).
    assert url.hostname == f"{REDIS}.{NAMESPACE}.svc"
    port = url.port or 6379
    serves(service, redis_set, port)
    assert redis_set["spec"]["serviceName"] == REDIS
    assert service["spec"]["clusterIP"] == "None", "the StatefulSet's governing Service"
    (container,) = containers(redis_set)
    assert container["image"].startswith("redis:7."), "Redis 7: XADD <ms>-*, KEDA's XINFO GROUPS"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert container["image"] == compose["services"]["redis"]["image"], "the image Compose runs"
    command = container["command"]
    assert command[0] == "redis-server"
    assert option(command, "--appendonly") == "yes"
    assert option(command, "--maxmemory-policy") == "noeviction", "results are never evicted"
    (claim,) = redis_set["spec"]["volumeClaimTemplates"]
    (mount,) = container["volumeMounts"]
    assert (mount["name"], mount["mountPath"]) == (
        claim["metadata"]["name"],
        option(command, "--dir"),
    )


def test_mlflow_is_where_the_configmap_looks_and_its_command_parses() -> None:
    from mlflow.cli import server
    from mlflow.environment_variables import MLFLOW_SERVER_ENABLE_JOB_EXECUTION
    from mlflow.server.security_utils import is_allowed_host_header

    objs = applied()
    deployment = one(objs, "Deployment", MLFLOW)
    (container,) = containers(deployment)
    command = container["command"]
    assert command[:2] == ["mlflow", "server"]
    options = server.make_context("server", list(command[2:])).params
    url = urlsplit(Settings(**configmap()).MLFLOW_TRACKING_URI)
    assert url.hostname == f"{MLFLOW}.{NAMESPACE}.svc"
    assert url.port == int(options["port"])
    serves(one(objs, "Service", MLFLOW), deployment, url.port)
    # MLflow refuses a Host header it does not know: the one streamfn sends is allowed.
    assert is_allowed_host_header(options["allowed_hosts"].split(","), url.netloc)
    assert not is_allowed_host_header(options["allowed_hosts"].split(","), "evil.example.com")
    # The store and the artifacts on the claim, one writer at a time.
    (store,) = [m for m in container["volumeMounts"] if m["name"] == "store"]
    claim = deployment["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]
    assert one(objs, "PersistentVolumeClaim", claim["claimName"])
    for path in (
        options["backend_store_uri"].removeprefix("sqlite:///"),
        options["artifacts_destination"],
    ):
        assert Path(path).is_relative_to(store["mountPath"]), path
    assert options["workers"] == "1"
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}, "never two servers on SQLite"
    assert [v["name"] for v in container["env"]] == [MLFLOW_SERVER_ENABLE_JOB_EXECUTION.name]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert (get["path"], port_number(container, get["port"])) == ("/health", url.port), probe


def test_the_training_job_trains_what_the_registry_lacks() -> None:
    job = one(applied(), "Job", TRAIN)
    (container,) = containers(job)
    command = container["command"]
    assert command[0] == "streamfn"
    args = build_parser().parse_args(command[1:])
    assert (args.command, args.if_missing) == ("train", True)
    assert args.tracking_uri is None, "the ConfigMap's MLFLOW_TRACKING_URI, as every process"
    assert "env" not in container, "training needs no secret: the server stores the artifacts"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] > 0, "retried while MLflow is not up yet"
    assert job["spec"]["ttlSecondsAfterFinished"] > 0, (
        "gone once done: the next apply runs it again"
    )


def test_the_ingress_reaches_the_ingest_service_and_takes_its_bodies() -> None:
    objs = applied()
    ingress = one(objs, "Ingress", INGEST)
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    backend = path["backend"]["service"]
    service = one(objs, "Service", backend["name"])
    assert backend["name"] == INGEST
    assert service_port(service, backend["port"].get("name") or backend["port"]["number"])
    (tls,) = ingress["spec"]["tls"]
    assert tls["hosts"] == [rule["host"]]
    # The controller must let through every body ingest itself takes (413 above MAX_BODY_BYTES).
    size = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    number, unit = re.fullmatch(r"(\d+)([km]?)", size).groups()
    limit = int(number) * {"": 1, "k": 1024, "m": 1024 * 1024}[unit]
    assert limit > Settings(**configmap()).MAX_BODY_BYTES


# ---- KEDA scales the poller on the stream and group the ConfigMap names -------------------------


def scaled_objects() -> list[tuple[str, Obj]]:
    """(file, ScaledObject) for the applied one and each alternative."""
    return [
        (path.name, obj)
        for path in manifest_files()
        for obj in documents(path)
        if obj["kind"] == "ScaledObject"
    ]


def test_the_scaledobject_targets_the_poller_deployment() -> None:
    objs = applied()
    assert [o["metadata"]["name"] for o in objs if o["kind"] == "ScaledObject"] == [POLLER]
    poller = one(objs, "Deployment", POLLER)
    assert shlex.join(containers(poller)[0]["command"]).startswith("streamfn poll")
    assert "replicas" not in poller["spec"], "KEDA's HPA owns the count; apply must not reset it"
    for name, scaled in scaled_objects():
        ref = scaled["spec"]["scaleTargetRef"]
        assert ref.get("kind", "Deployment") == "Deployment", name
        assert ref.get("apiVersion", "apps/v1") == "apps/v1", name
        assert ref["name"] == POLLER, name
        assert scaled["spec"]["minReplicaCount"] == 0, f"{name}: scale to zero"
        assert scaled["spec"]["maxReplicaCount"] >= 1, name
        assert {"pollingInterval", "cooldownPeriod"} <= scaled["spec"].keys(), name


@pytest.mark.parametrize("name", [name for name, _ in scaled_objects()])
def test_triggers_read_the_configmaps_streams_and_group(name: str) -> None:
    scaled = dict(scaled_objects())[name]
    data = configmap()
    settings = Settings(**data)
    # The cluster file is written for REDIS_CLUSTER=true and STREAM_PARTITIONS=len(triggers).
    cluster = name in ALTERNATIVES
    if not cluster:
        assert data.get("REDIS_CLUSTER", "false") == "false", "a cluster needs the cluster file"
    partitions = len(triggers(scaled)) if cluster else settings.STREAM_PARTITIONS
    expected = Settings(STREAM_KEY=settings.STREAM_KEY, STREAM_PARTITIONS=partitions).streams
    assert [t["metadata"]["stream"] for t in triggers(scaled)] == expected, "one per partition"
    url = urlsplit(settings.REDIS_URL)
    auths = {o["metadata"]["name"] for o in applied() if o["kind"] == "TriggerAuthentication"}
    max_replicas = scaled["spec"]["maxReplicaCount"]
    for trigger in triggers(scaled):
        meta = trigger["metadata"]
        assert trigger["type"] == ("redis-cluster-streams" if cluster else "redis-streams")
        assert meta["consumerGroup"] == settings.CONSUMER_GROUP
        # lagCount set: KEDA reads the group's lag (the only mode that scales to zero).
        lag = int(meta["lagCount"])
        assert 0 < lag * max_replicas <= settings.MAX_LAG, "all pollers before ingest's 503"
        assert int(meta.get("activationLagCount", "0")) == 0
        assert trigger["authenticationRef"]["name"] in auths
        assert meta.get("enableTLS", "false") == str(url.scheme == "rediss").lower()
        if not cluster:
            assert meta["address"] == f"{url.hostname}:{url.port or 6379}", "REDIS_URL's"
            assert meta["databaseIndex"] == ((url.path or "/0").lstrip("/") or "0")
    names = [t.get("name") for t in triggers(scaled)]
    assert len(set(names)) == len(names)
    if len(names) > 1:  # the total lag over the partitions, not the largest one
        formula = scaled["spec"]["advanced"]["scalingModifiers"]["formula"]
        assert set(re.findall(r"\w+", formula)) == set(names), formula


def scaling_says(shape: str) -> str:
    """What docs/SCALING.md's "What a user changes" sets for one shape, on one line."""
    changes = SCALING.read_text().split("## What a user changes", 1)[1]
    found = re.search(rf"\*\*{re.escape(shape)}\*\*: (.*?)(?=\n- \*\*|\n\n)", changes, re.S)
    assert found, f"docs/SCALING.md has no {shape!r} in What a user changes"
    return " ".join(found[1].split())


def test_the_pollers_cap_is_what_scaling_asks_of_each_redis() -> None:
    scaled = dict(scaled_objects())
    # One node: SCALING's one-node shape names the least maxReplicaCount.
    one_node = scaling_says("100k records/s, 100 records per entry")
    least = int(re.search(r"`maxReplicaCount` of (\d+) or more", one_node)[1])
    assert scaled["scaledobject.yaml"]["spec"]["maxReplicaCount"] >= least
    # The cluster file is SCALING's shape for 1M records/s: its partitions and its pollers.
    cluster = scaling_says("1M records/s, 100 records per entry")
    spec = scaled["scaledobject-cluster.yaml"]["spec"]
    assert len(spec["triggers"]) == int(re.search(r"STREAM_PARTITIONS=(\d+)", cluster)[1])
    assert spec["maxReplicaCount"] == int(re.search(r"Pollers: (\d+)", cluster)[1])
