"""deploy/ecs, offline: the ECS task definitions and services against the ECS API's own model,
and against the commands they run.

Each JSON file is the `--cli-input-json` of one AWS CLI call (`aws ecs register-task-definition`,
`aws ecs create-service`), with `${NAME}` placeholders that docs/deployment.md fills from the
stack's outputs with envsubst. The files are rendered with an example value for each placeholder
and validated against a JSON schema built from botocore's model of the operation's input (the
model the AWS CLI itself validates with): required members, member names (an unknown one is
refused) and types, enums and bounds, recursively. Then the streamfn-specific checks: the
poller's variables are Settings fields with valid values that agree with the stack, its command
is a `streamfn poll` the CLI parses, its health check asks /health of the metrics port (and fails
when that answers 503), a full batch fits in one Lambda invocation; MLflow's command is one
`mlflow server` parses, its store on the EFS volume. No AWS, no network; nothing waits.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import subprocess
import sys
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import urlsplit

import botocore.session
import jsonschema
import orjson
import pytest
from botocore.model import Shape
from botocore.validate import ParamValidator

from streamfn.bench.ceilings.results import entry_fields, sample_records
from streamfn.cli import build_parser
from streamfn.core import health
from streamfn.core.settings import Settings, load_settings
from streamfn.stream.events import sqs_shaped
from streamfn.stream.redis.partition import body_of
from tests.descriptors.test_template import template

ROOT = Path(__file__).resolve().parents[2]
ECS = ROOT / "deploy" / "ecs"
DOCS = ROOT / "docs" / "deployment.md"
POLLER_TASK = "poller-task-definition.json"
MLFLOW_TASK = "mlflow-task-definition.json"
TRAIN_TASK = "train-task-definition.json"
# Each file and the ECS operation that takes it as its input.
OPERATIONS = {
    POLLER_TASK: "RegisterTaskDefinition",
    MLFLOW_TASK: "RegisterTaskDefinition",
    TRAIN_TASK: "RegisterTaskDefinition",
    "poller-service.json": "CreateService",
    "mlflow-service.json": "CreateService",
}
POLICIES = ("task-role-trust.json", "mlflow-task-policy.json")
# An example value of every placeholder (docs/deployment.md says where each comes from).
EXAMPLES = {
    "AWS_REGION": "eu-west-1",
    "AWS_ACCOUNT_ID": "123456789012",
    "STREAMFN_IMAGE": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/streamfn:0.1.0",
    "REDIS_URL": "rediss://master.streamfn.abcdef.euw1.cache.amazonaws.com:6379/0",
    "INFER_FUNCTION_NAME": "streamfn-InferFunction-AbCdEf123456",
    "POLLER_TASK_ROLE_ARN": "arn:aws:iam::123456789012:role/streamfn-poller-task",
    "MLFLOW_TASK_ROLE_ARN": "arn:aws:iam::123456789012:role/streamfn-mlflow-task",
    "EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/streamfn-task-execution",
    "SUBNET_ID_1": "subnet-0123456789abcdef0",
    "SUBNET_ID_2": "subnet-0123456789abcdef1",
    "APP_SECURITY_GROUP_ID": "sg-0123456789abcdef0",
    "MLFLOW_SECURITY_GROUP_ID": "sg-0123456789abcdef1",
    "MLFLOW_ARTIFACT_BUCKET": "streamfn-mlflow-123456789012",
    "MLFLOW_FILE_SYSTEM_ID": "fs-0123456789abcdef0",
    "MLFLOW_ACCESS_POINT_ID": "fsap-0123456789abcdef0",
    "MLFLOW_DISCOVERY_SERVICE_ARN": (
        "arn:aws:servicediscovery:eu-west-1:123456789012:service/srv-0123456789abcdef"
    ),
}
PLACEHOLDER = re.compile(r"\$\{([A-Z0-9_]+)\}")
# Lambda's quota on a synchronous invocation's request payload: 6 MB.
LAMBDA_PAYLOAD_BYTES = 6 * 1024 * 1024
# The stack's parameters the poller's variables must agree with (template.yaml).
STACK_VARIABLES = {
    "STREAM_KEY": "StreamKey",
    "CONSUMER_GROUP": "ConsumerGroup",
    "STREAM_PARTITIONS": "StreamPartitions",
    "REDIS_CLUSTER": "RedisCluster",
}
HEALTH_URL = re.compile(r"http://localhost:(\d+)(/[\w/]*)")

Obj = dict[str, Any]


# ---- the files, rendered as docs/deployment.md renders them -------------------------------------


def placeholders(name: str) -> set[str]:
    return set(PLACEHOLDER.findall((ECS / name).read_text()))


def rendered(name: str) -> Obj:
    """The file with every placeholder replaced by its example value."""
    return json.loads(Template((ECS / name).read_text()).substitute(EXAMPLES))


def container(task: Obj, name: str) -> Obj:
    (found,) = [c for c in task["containerDefinitions"] if c["name"] == name]
    return found


def environment(definition: Obj) -> dict[str, str]:
    variables = {v["name"]: v["value"] for v in definition.get("environment", [])}
    assert len(variables) == len(definition.get("environment", [])), "a variable set twice"
    return variables


# ---- a JSON schema of an operation's input, from botocore's model of the ECS API ----------------


@functools.cache
def ecs_model() -> Any:
    return botocore.session.get_session().get_service_model("ecs")


def python_regex(pattern: str) -> bool:
    """Whether Python's re (jsonschema's) reads the pattern: a few of the model's use Unicode
    property classes (\\p{L}), which it does not; those are left out of the schema."""
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


def shape_schema(shape: Shape, defs: dict[str, Obj]) -> Obj:
    """The JSON schema of one botocore shape; structures go to `defs`, by name, once."""
    kind = shape.type_name
    bounds = shape.metadata
    if kind == "structure":
        if shape.name not in defs:
            defs[shape.name] = {}  # taken, before its members: a shape may contain itself
            defs[shape.name] = {
                "type": "object",
                "properties": {n: shape_schema(m, defs) for n, m in shape.members.items()},
                "required": list(shape.required_members),
                "additionalProperties": False,
            }
        return {"$ref": f"#/$defs/{shape.name}"}
    if kind == "list":
        out: Obj = {"type": "array", "items": shape_schema(shape.member, defs)}
        limits = {"min": "minItems", "max": "maxItems"}
    elif kind == "map":
        out = {"type": "object", "propertyNames": shape_schema(shape.key, defs),
               "additionalProperties": shape_schema(shape.value, defs)}  # fmt: skip
        limits = {"min": "minProperties", "max": "maxProperties"}
    elif kind == "string":
        out = {"type": "string"}
        if shape.enum:
            out["enum"] = list(shape.enum)
        if "pattern" in bounds and python_regex(bounds["pattern"]):
            out["pattern"] = bounds["pattern"]
        limits = {"min": "minLength", "max": "maxLength"}
    elif kind in ("integer", "long"):
        out, limits = {"type": "integer"}, {"min": "minimum", "max": "maximum"}
    elif kind in ("double", "float"):
        out, limits = {"type": "number"}, {"min": "minimum", "max": "maximum"}
    elif kind == "boolean":
        out, limits = {"type": "boolean"}, {}
    elif kind in ("timestamp", "blob"):
        out, limits = {"type": "string"}, {}
    else:
        raise AssertionError(f"a botocore shape of an unknown kind: {kind} ({shape.name})")
    out.update({keyword: bounds[key] for key, keyword in limits.items() if key in bounds})
    return out


@functools.cache
def operation_schema(operation: str) -> Obj:
    """The JSON schema of an ECS operation's input, as `--cli-input-json` takes it."""
    defs: dict[str, Obj] = {}
    root = shape_schema(ecs_model().operation_model(operation).input_shape, defs)
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **root, "$defs": defs}
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def schema_errors(document: Obj, operation: str) -> list[str]:
    validator = jsonschema.Draft202012Validator(operation_schema(operation))
    return [
        f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def botocore_errors(document: Obj, operation: str) -> str:
    """What botocore's own parameter validation (the CLI's, before any request) says."""
    shape = ecs_model().operation_model(operation).input_shape
    report = ParamValidator().validate(document, shape)
    return report.generate_report() if report.has_errors() else ""


# ---- every file: its placeholders, and its operation's schema -----------------------------------


def test_every_file_is_checked_and_every_placeholder_has_an_example() -> None:
    files = {p.name for p in ECS.glob("*.json")}
    assert files == set(OPERATIONS) | set(POLICIES), "a file in deploy/ecs that no test checks"
    used = set().union(*(placeholders(name) for name in files))
    assert used == set(EXAMPLES), "an example for each placeholder, none left over"
    # The walk-through's table says what each placeholder is and where it comes from.
    table = DOCS.read_text().split("| placeholder | value |", 1)[1].split("\n\n", 1)[0]
    listed = re.findall(
        r"`([A-Z0-9_]+)`", "".join(row.split("|")[1] for row in table.splitlines()[2:])
    )
    assert sorted(listed) == sorted(used)


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_each_file_is_its_operations_input(name: str) -> None:
    document = rendered(name)
    operation = OPERATIONS[name]
    assert schema_errors(document, operation) == []
    assert botocore_errors(document, operation) == ""


def test_a_misspelt_mistyped_or_missing_member_is_rejected() -> None:
    task = rendered(POLLER_TASK)
    cases: list[tuple[str, Obj]] = []
    misspelt = copy.deepcopy(task)
    misspelt["containerDefinitions"][0]["healthcheck"] = misspelt["containerDefinitions"][0].pop(
        "healthCheck"
    )
    cases.append(("healthcheck", misspelt))
    mistyped = copy.deepcopy(task)
    mistyped["containerDefinitions"][0]["essential"] = "true"
    cases.append(("essential", mistyped))
    unquoted = copy.deepcopy(task)
    unquoted["cpu"] = 512  # the task's cpu and memory are strings in the API
    cases.append(("cpu", unquoted))
    missing = copy.deepcopy(task)
    del missing["containerDefinitions"][0]["healthCheck"]["command"]
    cases.append(("command", missing))
    unknown_driver = copy.deepcopy(task)
    unknown_driver["containerDefinitions"][0]["logConfiguration"]["logDriver"] = "cloudwatch"
    cases.append(("logDriver", unknown_driver))
    nameless = copy.deepcopy(task)
    del nameless["family"]
    cases.append(("family", nameless))
    for field, document in cases:
        errors = schema_errors(document, "RegisterTaskDefinition")
        assert any(field in e for e in errors), f"{field}: {errors}"
        # botocore agrees (the AWS CLI would refuse it before sending anything), but for the
        # enums, which it leaves to the API.
        refused = botocore_errors(document, "RegisterTaskDefinition")
        assert bool(refused) is (field != "logDriver"), field


def test_the_schema_follows_botocores_model() -> None:
    schema = operation_schema("RegisterTaskDefinition")
    definition = schema["$defs"]["ContainerDefinition"]
    model = ecs_model().shape_for("ContainerDefinition")
    assert set(definition["properties"]) == set(model.members)
    request = schema["$defs"]["RegisterTaskDefinitionRequest"]
    assert schema["$ref"] == "#/$defs/RegisterTaskDefinitionRequest"
    assert request["required"] == ["family", "containerDefinitions"]
    assert schema["$defs"]["HealthCheck"]["required"] == ["command"]


# ---- the poller: the stack's variables, its command, its health check, its batches ---------------


def poller() -> Obj:
    return container(rendered(POLLER_TASK), "poller")


def valid_settings(definition: Obj) -> Settings:
    """The container's variables as Settings: each a field (Settings ignores any other name),
    each value valid and read as written."""
    variables = environment(definition)
    unknown = set(variables) - set(Settings.model_fields)
    assert not unknown, f"not streamfn settings (Settings ignores them): {sorted(unknown)}"
    settings = load_settings(**variables)  # a bad value would stop the task at start
    for name, value in variables.items():
        assert str(getattr(settings, name)).lower() == value.lower(), name
    return settings


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read from the file alone, never from the developer's environment."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("clean_environment")
def test_the_pollers_variables_are_valid_settings() -> None:
    settings = valid_settings(poller())
    # It invokes the stack's function through Lambda: never in process, never over HTTP.
    assert EXAMPLES["INFER_FUNCTION_NAME"] == settings.INFER_FUNCTION_NAME
    assert settings.INFER_URL is None
    assert settings.AWS_ENDPOINT_URL_LAMBDA is None
    assert settings.STREAM_BACKEND == "redis"
    assert settings.REDIS_URL.startswith("rediss://"), "ElastiCache with TLS"


def test_the_pollers_variables_agree_with_the_stacks_parameters() -> None:
    parameters = template()["Parameters"]
    variables = environment(poller())
    for variable, parameter in STACK_VARIABLES.items():
        assert variables[variable] == str(parameters[parameter]["Default"]), variable
    # The values the stack's Outputs give, and the region: placeholders, not copies.
    raw = container(json.loads((ECS / POLLER_TASK).read_text()), "poller")
    raw_variables = environment(raw)
    for variable in ("REDIS_URL", "INFER_FUNCTION_NAME", "AWS_DEFAULT_REGION"):
        assert PLACEHOLDER.fullmatch(raw_variables[variable]), variable
    assert "InferFunctionName" in template()["Outputs"]


def test_the_pollers_command_is_a_streamfn_poll_the_cli_parses() -> None:
    definition = poller()
    command = definition["command"]
    assert command[0] == "streamfn"
    args = build_parser().parse_args(command[1:])
    assert args.command == "poll"
    assert not args.burst, "a service's poller runs until stopped"
    assert args.metrics_port is not None
    ports = [p["containerPort"] for p in definition["portMappings"]]
    assert ports == [args.metrics_port]
    with pytest.raises(SystemExit):  # the parser refuses what it does not know
        build_parser().parse_args([*command[1:], "--metrics-prot", "1"])


def health_code(definition: Obj) -> str:
    check = definition["healthCheck"]["command"]
    assert check[:3] == ["CMD", "python", "-c"], "exec form: the image has python, not curl"
    return check[3]


def run_check(code: str, port: int) -> int:
    """The health check's command against a server on `port`; its exit status."""
    moved = HEALTH_URL.sub(lambda m: f"http://127.0.0.1:{port}{m[2]}", code)
    done = subprocess.run([sys.executable, "-c", moved], capture_output=True, timeout=30)
    return done.returncode


@pytest.mark.parametrize("healthy", [True, False])
def test_the_health_check_asks_the_metrics_ports_health(healthy: bool) -> None:
    definition = poller()
    code = health_code(definition)
    (url,) = HEALTH_URL.findall(code)
    command = definition["command"]
    assert int(url[0]) == int(command[command.index("--metrics-port") + 1])
    assert url[1] == "/health"
    check = definition["healthCheck"]
    assert check["timeout"] < check["interval"]
    # streamfn's own health server, as `streamfn poll --metrics-port` serves it.
    server = health.serve(0, lambda: (healthy, {}), host="127.0.0.1")
    try:
        status = run_check(code, server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
    assert (status == 0) is healthy, "0 while /health answers 200, else not"


def test_the_poller_logs_to_cloudwatch_and_stops_cleanly() -> None:
    definition = poller()
    logging = definition["logConfiguration"]
    assert logging["logDriver"] == "awslogs"
    assert logging["options"]["awslogs-group"] == "/ecs/streamfn-poller"
    assert logging["options"]["awslogs-region"] == EXAMPLES["AWS_REGION"]
    # SIGTERM finishes the batch in flight; Fargate waits at most 120 s before SIGKILL.
    assert 30 <= definition["stopTimeout"] <= 120
    assert definition["readonlyRootFilesystem"] is True
    assert {m["containerPath"] for m in definition["mountPoints"]} == {"/tmp"}
    assert definition["user"] == re.search(r"--uid (\d+)", (ROOT / "Dockerfile").read_text())[1]


def full_batch_event(entries: int) -> bytes:
    """The poller's event for `entries` requests of 100 synthetic records each, as sent."""
    fields = {k.encode(): v if isinstance(v, bytes) else v.encode()
              for k, v in entry_fields(sample_records(100)).items()}  # fmt: skip
    body = body_of(fields)
    ids = (f"1796307474724-{i}" for i in range(entries))
    return orjson.dumps(sqs_shaped(((i, body, 1) for i in ids), "rediss://cache:6379/mlops_stream"))


def test_a_full_batch_of_100_record_requests_fits_one_lambda_invocation() -> None:
    batch_size = int(environment(poller())["BATCH_SIZE"])
    assert len(full_batch_event(batch_size)) < LAMBDA_PAYLOAD_BYTES
    # The default would not: that is why the task sets BATCH_SIZE.
    default = Settings.model_fields["BATCH_SIZE"].default
    assert len(full_batch_event(default)) > LAMBDA_PAYLOAD_BYTES


# ---- MLflow: its command, its store on EFS, its health check; training into it -------------------


def mlflow_options() -> dict[str, Any]:
    """The options of the MLflow task's `mlflow server`, as its own command line parses them."""
    from mlflow.cli import server

    command = container(rendered(MLFLOW_TASK), "mlflow")["command"]
    assert command[:2] == ["mlflow", "server"]
    return server.make_context("server", list(command[2:])).params


def test_mlflows_command_is_one_mlflow_server_parses() -> None:
    from mlflow.cli import server

    definition = container(rendered(MLFLOW_TASK), "mlflow")
    options = mlflow_options()
    assert options["workers"] == "1", "one process writes the SQLite store"
    store = options["backend_store_uri"].removeprefix("sqlite:///")
    mounts = {m["containerPath"] for m in definition["mountPoints"]}
    assert str(Path(store).parent) in mounts, "the SQLite file is on the EFS volume"
    assert (
        options["artifacts_destination"] == f"s3://{EXAMPLES['MLFLOW_ARTIFACT_BUCKET']}/artifacts"
    )
    assert "mlflow.streamfn.internal" in options["allowed_hosts"].split(",")
    (volume,) = rendered(MLFLOW_TASK)["volumes"]
    efs = volume["efsVolumeConfiguration"]
    assert efs["transitEncryption"] == "ENABLED"
    assert efs["authorizationConfig"]["iam"] == "ENABLED"
    (url,) = HEALTH_URL.findall(health_code(definition))
    assert (int(url[0]), url[1]) == (int(options["port"]), "/health")
    with pytest.raises(Exception, match="no-such-option"):
        server.make_context("server", ["--no-such-option"])


@pytest.mark.usefixtures("clean_environment")
def test_training_runs_streamfn_train_against_the_mlflow_service() -> None:
    task = rendered(TRAIN_TASK)
    definition = container(task, "train")
    command = definition["command"]
    assert command[0] == "streamfn"
    args = build_parser().parse_args(command[1:])
    assert (args.command, args.if_missing) == ("train", True)
    # The server the MLflow task runs, by the name the service registers and the server allows.
    uri = urlsplit(valid_settings(definition).MLFLOW_TRACKING_URI)
    options = mlflow_options()
    assert uri.hostname in options["allowed_hosts"].split(",")
    assert uri.port == int(options["port"])
    # Artifacts go through the server (--artifacts-destination): training needs no AWS role.
    assert "taskRoleArn" not in task
    assert definition["readonlyRootFilesystem"] is True
    assert {m["containerPath"] for m in definition["mountPoints"]} == {"/tmp"}


def test_one_mlflow_task_at_a_time() -> None:
    service = rendered("mlflow-service.json")
    # SQLite has one writer: a deployment stops the old task before it starts the new one.
    assert service["desiredCount"] == 1
    assert service["deploymentConfiguration"]["maximumPercent"] == 100
    assert service["deploymentConfiguration"]["minimumHealthyPercent"] == 0


@pytest.mark.parametrize("name", ["poller-service.json", "mlflow-service.json"])
def test_services_run_their_task_in_private_subnets(name: str) -> None:
    service = rendered(name)
    family = name.replace("-service.json", "")
    assert service["taskDefinition"] == rendered(f"{family}-task-definition.json")["family"]
    network = service["networkConfiguration"]["awsvpcConfiguration"]
    assert network["assignPublicIp"] == "DISABLED"
    assert service["launchType"] == "FARGATE"


# ---- the roles: who may assume them, and what the MLflow task may do -----------------------------


@pytest.mark.parametrize("name", POLICIES)
def test_policies_grant_named_resources_only(name: str) -> None:
    policy = rendered(name)
    assert policy["Version"] == "2012-10-17"
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        for action in [actions] if isinstance(actions, str) else actions:
            assert "*" not in action, action
        if "Resource" in statement:
            resources = statement["Resource"]
            for resource in [resources] if isinstance(resources, str) else resources:
                assert resource.startswith("arn:aws:"), resource
                assert resource != "*", resource
                assert not resource.endswith(":*"), resource
    if name == "mlflow-task-policy.json":
        # Objects under the server's --artifacts-destination, nothing else of the bucket.
        bucket, _, folder = (
            mlflow_options()["artifacts_destination"].removeprefix("s3://").partition("/")
        )
        (objects,) = [st for st in policy["Statement"] if "s3:GetObject" in st["Action"]]
        assert objects["Resource"] == f"arn:aws:s3:::{bucket}/{folder}/*"
        (listing,) = [st for st in policy["Statement"] if st["Action"] == "s3:ListBucket"]
        assert listing["Resource"] == f"arn:aws:s3:::{bucket}"
        assert listing["Condition"]["StringLike"]["s3:prefix"] == [f"{folder}/*"]
    if name == "task-role-trust.json":
        (statement,) = policy["Statement"]
        assert statement["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
        assert statement["Action"] == "sts:AssumeRole"
        assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == "123456789012"


# ---- the walk-through: one row for each parameter of the stack -----------------------------------


def parameter_rows(markdown: str) -> dict[str, str]:
    """The rows of the walk-through's table of parameters: name -> the default it states."""
    table = markdown.split("| parameter | default | what to give it |", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| \**`(\w+)`\** \|([^|]*)\|", table, re.MULTILINE)
    return {name: default.strip() for name, default in rows}


def test_the_walkthrough_explains_every_parameter_of_the_stack() -> None:
    rows = parameter_rows(DOCS.read_text())
    parameters = template()["Parameters"]
    assert list(rows) == list(parameters), "one row a parameter, in the template's order"
    for name, stated in rows.items():
        default = parameters[name].get("Default")
        expected = "" if default is None else "empty" if default == "" else f"`{default}`"
        assert stated == expected, f"{name}: the docs say {stated!r}, the template {default!r}"
