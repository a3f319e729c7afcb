"""deploy/k8s, offline: the manifests against their schemas, and against streamfn itself.

The core kinds are validated by kubernetes-validate against the Kubernetes API's schemas for the
version `make validate` pins (K8S_VERSION in the Makefile), strictly: an unknown field fails, as
`kubectl apply` (strict field validation) would refuse it. KEDA's kinds are validated against
the openAPIV3Schema of KEDA's CRDs, vendored in deploy/k8s/schemas, made strict the same way.
Then the manifests are checked against the code they run: the ConfigMap's keys are Settings
fields and its values valid settings, the probes ask paths the processes serve on the ports they
listen on, and the ScaledObject scales the poller Deployment on the stream and group the
ConfigMap names. No cluster, no network; nothing waits.
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


def containers(deployment: Obj) -> list[Obj]:
    return deployment["spec"]["template"]["spec"]["containers"]


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
    for deployment in (o for o in applied() if o["kind"] == "Deployment"):
        for container in containers(deployment):
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
    for deployment in (o for o in applied() if o["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        name = deployment["metadata"]["name"]
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
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert "httpGet" in container[probe], f"{name}: {probe}"
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
    deployments = [o for o in objs if o["kind"] == "Deployment"]
    policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
    for deployment in deployments:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        ports = {p["containerPort"] for c in containers(deployment) for p in c["ports"]}
        mine = [
            p for p in policies if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        ]
        assert mine, f"{deployment['metadata']['name']}: no NetworkPolicy"
        rules = [rule for policy in mine for rule in policy["spec"]["ingress"]]
        allowed = {port["port"] for rule in rules for port in rule["ports"]}
        assert allowed == ports, deployment["metadata"]["name"]


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
