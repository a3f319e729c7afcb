"""docker-compose.yml, run without an engine: each application service's command, natively.

The file is read as compose reads it (merge keys, `${VAR:-default}`), every service name in a
URL is mapped to 127.0.0.1, and each application service (buckets, trainer, ingest, infer,
lambda-poller, poller, producer) runs its own command with its own environment, in
`depends_on` order. The infrastructure runs natively too: redis-server with the file's command,
MLflow with the file's command; only MinIO, which cannot be installed here, is stood in for by
moto's S3 server. The infrastructure listens on free ports (not the defaults), so a service that
lacks a variable, and falls back to a default, finds nothing there and fails the test. The infer
service's image is stood in for by tests/descriptors/lambda_api.py serving the handler named in
the image's CMD over the Lambda Invoke API.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

from streamfn.core.settings import Settings
from streamfn.local.stack import free_port
from tests.conftest import bucket_rows, s3_client, wait_for
from tests.factories import SEED_EXAMPLE
from tests.fixed_ports import wait_free

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
INFER_DOCKERFILE = ROOT / "functions" / "infer" / "Dockerfile"
APPLICATION = ("buckets", "trainer", "ingest", "infer", "lambda-poller", "poller", "producer")
INFRASTRUCTURE = ("redis", "minio", "mlflow")
MONITORING = ("prometheus", "grafana")  # images of their own, behind the monitoring profile
# Variables read by something other than streamfn's Settings, by who reads them.
FOREIGN_VARIABLES = {
    "MINIO_ROOT_USER": "minio", "MINIO_ROOT_PASSWORD": "minio",
    "MLFLOW_S3_ENDPOINT_URL": "mlflow", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "mlflow",
    "GF_AUTH_ANONYMOUS_ENABLED": "grafana", "GF_AUTH_ANONYMOUS_ORG_ROLE": "grafana",
}  # fmt: skip
APP_PORTS = (8800, 9100, 9101, 9102)
_VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def interpolate(value: Any) -> Any:
    """Compose's `${NAME:-default}` with an empty environment: the file's own defaults."""
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: m[2] or "", value)
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


def load_compose(path: Path = COMPOSE) -> dict[str, Any]:
    """The services of a compose file, merge keys applied and variables interpolated."""
    return interpolate(yaml.safe_load(path.read_text()))["services"]


def command_of(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def image_cmd(dockerfile: Path) -> list[str]:
    """The exec-form CMD of a Dockerfile (its last CMD line)."""
    lines = [line for line in dockerfile.read_text().splitlines() if line.startswith("CMD ")]
    return yaml.safe_load(lines[-1].removeprefix("CMD "))


def test_compose_is_consistent_with_the_images_and_settings() -> None:
    services = load_compose()
    assert set(services) == set(APPLICATION) | set(INFRASTRUCTURE) | set(MONITORING)
    # The infer service's command is the image's own CMD: the handler the emulator runs.
    assert command_of(services["infer"]) == image_cmd(INFER_DOCKERFILE)
    known = set(Settings.model_fields) | set(FOREIGN_VARIABLES)
    for name, service in services.items():
        unknown = set(service.get("environment", {})) - known
        assert not unknown, f"{name}: variables nobody reads: {unknown}"
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
    # Published on the host's loopback only: MinIO's local password, MLflow's registry (code
    # every poller runs) and an ingest that serves without a key are not the network's.
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    # The ingest listens on every interface of its network: it says on purpose that it may
    # serve without a key, and passes on a key from `.env`, as the producer does.
    ingest = services["ingest"]["environment"]
    assert (ingest["INGEST_AUTH"], ingest["INGEST_API_KEY"]) == ("none", "")
    assert "INGEST_API_KEY" in services["producer"]["environment"]
    # The MLflow server accepts the Host header the other services send.
    allowed = next(a for a in command_of(services["mlflow"]) if a.startswith("--allowed-hosts="))
    assert "mlflow:*" in allowed.split("=", 1)[1].split(",")


class NativeCompose:
    """Runs compose services as local processes, logging each to a file; stops them all."""

    def __init__(self, services: dict[str, Any], workdir: Path) -> None:
        self.services = services
        self.workdir = workdir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        # Infrastructure on free ports: a service that misses a variable cannot find it.
        self.ports = {"redis": free_port(), "minio": free_port(), "mlflow": free_port(),
                      "infer": free_port()}  # fmt: skip
        self.addresses = {
            "redis:6379": f"127.0.0.1:{self.ports['redis']}",
            "minio:9000": f"127.0.0.1:{self.ports['minio']}",
            "mlflow:5001": f"127.0.0.1:{self.ports['mlflow']}",
            "infer:8080": f"127.0.0.1:{self.ports['infer']}",
            "ingest:8800": "127.0.0.1:8800",
        }
        self.path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"

    def native(self, text: str) -> str:
        """A value with service addresses replaced by their native ones."""
        for address, native in self.addresses.items():
            text = text.replace(f"//{address}", f"//{native}")
        return text

    def environment(self, name: str) -> dict[str, str]:
        env = {
            k: self.native(str(v)) for k, v in self.services[name].get("environment", {}).items()
        }
        # Nothing from the developer's environment leaks in: only PATH and the file's variables.
        return {"PATH": self.path, "HOME": str(self.workdir), "LANG": "C.UTF-8", **env}

    def start(self, name: str, command: list[str], cwd: Path | None = None) -> None:
        log = (self.workdir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            command, env=self.environment(name), cwd=cwd or self.workdir, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def run_once(self, name: str, timeout: float) -> None:
        """A one-shot service: run to completion, which must be exit 0."""
        self.start(name, command_of(self.services[name]))
        code = self.processes[name].wait(timeout=timeout)
        assert code == 0, f"{name} exited {code}:\n{self.log(name)}"

    def healthy(self, name: str) -> None:
        """Run the service's own healthcheck command natively until it passes."""
        test = self.services[name]["healthcheck"]["test"]
        command = [self.native(part) for part in test[1:]]
        wait_for(
            lambda: self.alive(name) and subprocess.run(command, env=self.environment(name),
                                                        capture_output=True).returncode == 0,
            timeout=60, interval=0.5,
        )  # fmt: skip

    def alive(self, name: str) -> bool:
        process = self.processes[name]
        assert process.poll() is None, f"{name} exited {process.returncode}:\n{self.log(name)}"
        return True

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        for process in reversed(self.processes.values()):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[NativeCompose]:
    wait_free(APP_PORTS)  # the compose services listen there
    native = NativeCompose(load_compose(), tmp_path)
    try:
        yield native
    finally:
        native.stop()


def start_infrastructure(stack: NativeCompose) -> None:
    """redis-server and MLflow with the file's commands (on free ports); moto for MinIO."""
    services, ports, workdir = stack.services, stack.ports, stack.workdir
    redis_data = workdir / "redis-data"
    redis_data.mkdir()
    stack.start("redis", [*command_of(services["redis"]), "--port", str(ports["redis"])],
                cwd=redis_data)  # fmt: skip
    wait_for(redis.Redis(port=ports["redis"]).ping, timeout=30)
    moto = [sys.executable, "-c", "from moto.server import main; main()", "-p", str(ports["minio"])]
    stack.start("minio", moto)
    wait_for(lambda: httpx.get(f"http://127.0.0.1:{ports['minio']}/").status_code == 200, 30)
    stack.run_once("buckets", timeout=60)
    (workdir / "mlflow-data").mkdir()
    mlflow = [
        arg.replace("--port=5001", f"--port={ports['mlflow']}").replace(
            "////mlflow/", f"///{workdir / 'mlflow-data'}/"
        )
        for arg in command_of(services["mlflow"])
    ]
    stack.start("mlflow", mlflow)
    url = f"http://127.0.0.1:{ports['mlflow']}"
    wait_for(lambda: stack.alive("mlflow") and httpx.get(f"{url}/health").status_code == 200,
             timeout=90, interval=0.5)  # fmt: skip


# The app's ports are the file's own (8800, 9100-9102), as `streamfn up`'s are: under
# pytest-xdist, in the group that runs one such test at a time (tests/local/test_up_command.py).
@pytest.mark.slow
@pytest.mark.xdist_group("fixed-ports")
def test_compose_services_run_natively_end_to_end(stack: NativeCompose) -> None:
    services, ports = stack.services, stack.ports
    start_infrastructure(stack)
    mlflow = f"http://127.0.0.1:{ports['mlflow']}"
    # --allowed-hosts names the service: an API call as the other services send it is served.
    search = f"{mlflow}/api/2.0/mlflow/experiments/search?max_results=1"
    assert httpx.get(search, headers={"Host": "mlflow:5001"}).status_code == 200
    assert httpx.get(search, headers={"Host": "evil.example"}).status_code == 403
    stack.run_once("trainer", timeout=300)
    stack.start("ingest", command_of(services["ingest"]))
    stack.healthy("ingest")
    infer = [sys.executable, "-m", "tests.descriptors.lambda_api", *command_of(services["infer"]),
             "--port", str(ports["infer"])]  # fmt: skip
    stack.start("infer", infer, cwd=ROOT)
    invocations = f"http://127.0.0.1:{ports['infer']}/invocations"
    wait_for(lambda: stack.alive("infer") and httpx.get(invocations).status_code == 200, 60)
    for poller in ("lambda-poller", "poller"):
        stack.start(poller, command_of(services[poller]))
        stack.healthy(poller)
    stack.start("producer", command_of(services["producer"]))

    sent: dict[str, str] = {}

    def both_pollers_worked() -> bool:
        for model in ("svm", "knn", "lightgbm"):
            answer = httpx.post(
                f"http://127.0.0.1:8800/predict_stream?model={model}", json=SEED_EXAMPLE
            )
            assert answer.status_code == 202, answer.text
            sent[answer.json()["message_id"]] = model
        through_lambda = httpx.get(invocations).json()["invocations"]
        in_process = scrape_acked("http://127.0.0.1:9101/metrics")
        return through_lambda > 0 and in_process > 0

    wait_for(both_pollers_worked, timeout=120, interval=0.5)
    assert httpx.get(invocations).json()["errors"] == 0

    def all_done() -> bool:
        states = [httpx.get(f"http://127.0.0.1:8800/predictions/{i}").json() for i in sent]
        return all(s["status"] == "done" for s in states)

    wait_for(all_done, timeout=60, interval=0.5)
    s3 = s3_client(f"http://127.0.0.1:{ports['minio']}")
    rows = bucket_rows(s3)
    ours = {r["message_id"]: r for r in rows if r["message_id"] in sent}
    assert set(ours) == set(sent)
    assert all(ours[i]["model"] == m and ours[i]["model_version"] == "1" for i, m in sent.items())
    # The producer's records go through too (it sends one request a second).
    wait_for(lambda: len(bucket_rows(s3)) > len(ours), timeout=60, interval=0.5)
    for name in ("ingest", "infer", "lambda-poller", "poller", "producer"):
        stack.alive(name)


def scrape_acked(url: str) -> float:
    """Entries a poller acknowledged, from its metrics (0 while it does not answer)."""
    try:
        text = httpx.get(url).text
    except httpx.HTTPError:
        return 0.0
    match = re.search(r'^streamfn_poller_entries_total\{outcome="acked"\} (\S+)$', text, re.M)
    return float(match[1]) if match else 0.0
