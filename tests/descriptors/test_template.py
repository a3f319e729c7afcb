"""template.yaml and the Dockerfiles, checked without AWS or Docker: handlers, builds, paths.

`make validate` adds cfn-lint, `sam validate --lint` and a real `sam build` of the zip functions
(see tests/descriptors/zip_smoke.py); these tests need nothing beyond the project's venv.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamfn.core.settings import Settings
from streamfn.sink.layout import MONITORING, PREDICTIONS, SHADOW, prefix
from tests.descriptors.sam_transform import transformed

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


class CloudFormationLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, …) read as {tag: value}."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {suffix: value}


CloudFormationLoader.add_multi_constructor("!", _tagged)


def template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=CloudFormationLoader)


def functions() -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template()["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def import_handler(handler: str) -> object:
    """The callable a handler string names, imported as the Lambda runtime would."""
    module, _, attribute = handler.replace("/", ".").rpartition(".")
    return getattr(importlib.import_module(module), attribute)


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(instruction, arguments) of a Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]  # type: ignore[misc]


def copy_sources(path: Path) -> list[str]:
    """The build-context paths a Dockerfile's COPY instructions read."""
    sources = []
    for instruction, arguments in dockerfile_instructions(path):
        if instruction == "COPY":
            parts = [p for p in arguments.split() if not p.startswith("--")]
            sources.extend(parts[:-1])
    return sources


@pytest.fixture(autouse=True)
def _settings(make_settings: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """Handlers read the settings at import: give them the test's (clean) environment, a key
    for the ingest's (behind API Gateway it does not start without one)."""
    from streamfn.core.environment import get_settings

    monkeypatch.setenv("INGEST_API_KEY", "k")
    get_settings.cache_clear()


def test_every_zip_handler_imports_and_is_callable() -> None:
    zips = {n: f for n, f in functions().items() if "Handler" in f["Properties"]}
    assert set(zips) == {"IngestFunction", "ProduceFunction"}
    for name, function in zips.items():
        assert callable(import_handler(function["Properties"]["Handler"])), name
        # Built by the Makefile target SAM calls for BuildMethod: makefile.
        assert function["Metadata"]["BuildMethod"] == "makefile"
        assert re.search(rf"^build-{name}:", (ROOT / "Makefile").read_text(), re.M), name


def test_the_image_function_builds_from_a_dockerfile_whose_cmd_imports() -> None:
    infer = functions()["InferFunction"]
    assert infer["Properties"]["PackageType"] == "Image"
    context = ROOT / infer["Metadata"]["DockerContext"]
    dockerfile = context / infer["Metadata"]["Dockerfile"]
    instructions = dockerfile_instructions(dockerfile)
    assert instructions[0][0] == "FROM"
    assert instructions[0][1].startswith("public.ecr.aws/lambda/python:")
    cmd = json.loads(next(a for i, a in reversed(instructions) if i == "CMD"))
    assert callable(import_handler(cmd[0]))


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "functions/infer/Dockerfile"])
def test_dockerfiles_copy_only_paths_that_exist(dockerfile: str) -> None:
    sources = copy_sources(ROOT / dockerfile)
    assert sources
    missing = [s for s in sources if not (ROOT / s).exists()]
    assert not missing, f"{dockerfile} copies what the context lacks: {missing}"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert not [s for s in sources if s in ignored], "a COPY source is excluded by .dockerignore"


def test_template_variables_are_settings_and_the_infer_policy_is_its_bucket() -> None:
    known = set(Settings.model_fields)
    resources = template()["Resources"]
    globals_ = template()["Globals"]["Function"]["Environment"]["Variables"]
    for name, function in functions().items():
        variables = {**globals_, **function["Properties"].get("Environment", {}).get(
            "Variables", {})}  # fmt: skip
        assert set(variables) <= known, f"{name}: {set(variables) - known}"
    statements = resources["InferFunction"]["Properties"]["Policies"][0]["Statement"]
    for statement in statements:
        assert "*" not in json.dumps(statement["Action"])
        assert "PredictionsBucket" in json.dumps(statement["Resource"])
    # The infer function writes every kind of object (it closes the monitoring windows too).
    (writes,) = [s for s in statements if "s3:PutObject" in s["Action"]]
    for kind in (PREDICTIONS, SHADOW, MONITORING):
        assert f"/{prefix(kind)}*" in json.dumps(writes["Resource"]), kind


@pytest.fixture(scope="module")
def cloudformation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The transformed template, written as JSON."""
    path = tmp_path_factory.mktemp("sam") / "template.json"
    path.write_text(json.dumps(transformed(TEMPLATE), default=str))
    return path


def test_the_transformed_template_passes_cfn_lint(cloudformation: Path) -> None:
    done = subprocess.run(
        [Path(sys.executable).parent / "cfn-lint", str(cloudformation)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_producer_schedule_is_off_unless_enabled(cloudformation: Path) -> None:
    # SAM evaluates an intrinsic in a schedule's `Enabled` as true: the rule must use State.
    resources = json.loads(cloudformation.read_text())["Resources"]
    rule = next(r for r in resources.values() if r["Type"] == "AWS::Events::Rule")
    assert rule["Properties"]["State"] == {"Fn::If": ["ProducerOn", "ENABLED", "DISABLED"]}
    assert template()["Parameters"]["ProducerEnabled"]["Default"] == "false"
