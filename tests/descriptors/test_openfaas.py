"""deploy/openfaas, offline: the stack file against the stack format's schema (after faas-cli's
envsubst), and against streamfn: every variable a Settings field with a valid value, every
function's command one the `streamfn` CLI takes, listening where the watchdog forwards, and its
health path one the command serves."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from streamfn.cli import build_parser
from streamfn.core.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
OPENFAAS = ROOT / "deploy" / "openfaas"
# The variables of the watchdog (of-watchdog's own), not streamfn's.
WATCHDOG = {"fprocess", "exec_timeout", "write_timeout", "read_timeout", "mode", "upstream_url"}
UPSTREAM = re.compile(r"upstream_url=http://127\.0\.0\.1:(\d+)")
ENVSUBST = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def stack() -> dict[str, Any]:
    """The stack file as faas-cli reads it: `${VAR:-default}` replaced by the default."""
    text = (OPENFAAS / "stack.yml").read_text()
    return yaml.safe_load(ENVSUBST.sub(lambda m: m.group(2) or "", text))


def test_the_stack_file_follows_its_schema() -> None:
    schema = json.loads((OPENFAAS / "schemas" / "stack.schema.json").read_text())
    jsonschema.validate(stack(), schema)
    assert set(stack()["functions"]) == {"streamfn-ingest", "streamfn-infer", "streamfn-produce"}


def test_a_misspelt_field_is_refused() -> None:
    schema = json.loads((OPENFAAS / "schemas" / "stack.schema.json").read_text())
    found = stack()
    found["functions"]["streamfn-infer"]["enviroment"] = {"X": "1"}
    with pytest.raises(jsonschema.ValidationError, match="enviroment"):
        jsonschema.validate(found, schema)


@pytest.mark.parametrize("name", ["streamfn-ingest", "streamfn-infer", "streamfn-produce"])
def test_each_function_runs_a_streamfn_command_where_the_watchdog_forwards(name: str) -> None:
    function = stack()["functions"][name]
    environment = function["environment"]
    settings = {k: v for k, v in environment.items() if k not in WATCHDOG}
    assert set(settings) <= set(Settings.model_fields), set(settings) - set(Settings.model_fields)
    load_settings(**settings)  # valid values
    command = shlex.split(environment["fprocess"])
    assert command[0] == "streamfn"
    args = build_parser().parse_args(command[1:])
    upstream = UPSTREAM.search((OPENFAAS / "Dockerfile").read_text())
    assert upstream is not None
    port = getattr(args, "port", None) or getattr(args, "http_port", None)
    assert port == int(upstream.group(1))
    assert function["annotations"]["com.openfaas.health.http.path"] == "/health"
