"""Compiled inference: each version's parity report, the runtime it makes auto choose, a graph
that fails parity served natively (said in the log and in GET /models), `streamfn compile`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from streamfn.app import create_app
from streamfn.cli import main
from streamfn.cli.common import Exit
from streamfn.core.settings import SEED_MODELS, ConfigError, Settings, load_settings
from streamfn.data import training
from streamfn.data.artifacts import log_beside_version
from streamfn.data.compiling import files_of
from streamfn.models.cache import ModelCache
from streamfn.models.compiled import build
from streamfn.models.compiled.sample import edge_records, records_of
from streamfn.models.loading import load_version
from streamfn.models.registry import open_registry
from streamfn.models.runtimes.choice import AUTO, ONNX_FILE, PARITY_FILE, choose
from streamfn.models.schemas import seed_schema
from streamfn.models.seed import CATEGORICAL, FEATURES, NUMERIC

pytestmark = pytest.mark.slow

LIGHTGBM = SEED_MODELS["lightgbm"]
BROKEN = "broken"  # the alias of a lightgbm version whose graph was tampered with


# ---- the choice, on fabricated reports ------------------------------------------------------


def report(passed: bool = True, onnx_ms: tuple[float, ...] = (0.1, 1.0, 9.0)) -> dict[str, Any]:
    """A parity report as build.py writes one, with the figures given."""
    native_ms = (10.0, 12.0, 30.0)
    return {
        "format": 1, "converted": True, "error": None, "passed": passed, "rows": 5000,
        "classes_identical": 5000 if passed else 4990, "max_abs_diff": 1e-7 if passed else 0.12,
        "tolerance": 1e-5, "compared": "probabilities",
        "timings_ms": {str(size): {"native": n, "onnx": o}
                       for size, n, o in zip((1, 100, 1000), native_ms, onnx_ms, strict=True)},
    }  # fmt: skip


def test_auto_picks_onnx_only_when_parity_passed_and_it_is_faster_at_every_size() -> None:
    chosen = choose(AUTO, report())
    assert (chosen.runtime, chosen.refused) == ("onnx", False)
    assert "5,000 of 5,000 classes identical" in chosen.reason
    assert "100.0x at 1" in chosen.reason
    slower = choose(AUTO, report(onnx_ms=(0.1, 1.0, 31.0)))
    assert (slower.runtime, slower.refused) == ("native", False)
    assert "not faster at 1,000 records (31 ms against 30 ms native)" in slower.reason
    failed = choose(AUTO, report(passed=False))
    assert (failed.runtime, failed.refused) == ("native", True)
    assert "failed parity (4,990 of 5,000 classes identical, max difference 1.2e-01" in (
        failed.reason
    )
    never = choose(AUTO, None)
    assert (never.runtime, never.refused) == ("native", False)
    assert "streamfn compile" in never.reason
    unconverted = {"format": 1, "converted": False, "passed": False, "error": "no converter"}
    assert choose(AUTO, unconverted) == choose("onnx", unconverted)
    assert choose(AUTO, unconverted).reason == "no ONNX form: no converter"
    assert choose(AUTO, {**report(), "format": 2}).runtime == "native"


def test_forced_runtimes_and_a_model_logged_as_onnx() -> None:
    slower = report(onnx_ms=(20.0, 20.0, 40.0))
    assert choose("onnx", slower).runtime == "onnx"  # exact: served whatever the timings
    assert choose("onnx", report(passed=False)).runtime == "native"  # wrong: never served
    assert choose("native", report()).runtime == "native"
    assert choose(AUTO, None, onnx_model=True).runtime == "onnx"
    assert choose("native", None, onnx_model=True).runtime == "native"


def test_predict_runtime_defaults_to_auto_and_refuses_other_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PREDICT_RUNTIME", raising=False)
    assert load_settings().PREDICT_RUNTIME == "auto"
    with pytest.raises(ConfigError, match=r"PREDICT_RUNTIME='tvm'.*auto, native, onnx"):
        load_settings(PREDICT_RUNTIME="tvm")


# ---- the seed's versions, as `streamfn train` compiled them -----------------------------------


@pytest.mark.parametrize("api_name", list(SEED_MODELS))
def test_each_seed_version_has_its_graph_and_a_passing_parity_report(
    sqlite_registry: str, api_name: str
) -> None:
    registry = open_registry(sqlite_registry)
    name = SEED_MODELS[api_name]
    version = registry.alias_version(name, "champion").version
    found = registry.json_file(name, version, PARITY_FILE)
    graph = onnx.load_from_string(registry.file(name, version, ONNX_FILE))
    assert [i.name for i in graph.graph.input] == list(seed_schema().names)
    assert (found["format"], found["converted"], found["passed"]) == (1, True, True)
    assert found["model"] == name
    # The held-out split (4,299 records) plus the edge records, every class identical.
    assert found["rows"] == found["sample"]["records"] > 4299
    assert found["classes_identical"] == found["rows"]
    assert found["classes_differ_at"] == []
    assert found["max_abs_diff"] <= found["tolerance"] == 1e-5
    assert found["compared"] == ("decision_function" if api_name == "svm" else "probabilities")
    # The nulls and categories the schema allows are all in the sample.
    assert all(found["sample"]["missing"][n] > 0 for n in (*NUMERIC, *CATEGORICAL))
    for feature in FEATURES:
        if feature.kind == "category":
            assert set(found["sample"]["categories"][feature.name]) == set(feature.allowed)
    assert set(found["timings_ms"]) == {"1", "100", "1000"}
    assert all(t["native"] > 0 and t["onnx"] > 0 for t in found["timings_ms"].values())
    assert found["graph"]["opsets"]["ai.onnx"] == 21
    assert found["versions"]["onnxruntime"] != "absent"


# ---- a version whose graph fails parity --------------------------------------------------------


def tamper(graph: bytes) -> bytes:
    """The graph with its trees' leaf values 1% larger: the classes mostly right, the
    probabilities off by about 1e-3 (a subtle defect, as a converter's bug would be)."""
    model = onnx.load_from_string(graph)
    (trees,) = [n for n in model.graph.node if n.op_type == "TreeEnsembleClassifier"]
    (leaves,) = [a for a in trees.attribute if a.name == "class_weights_as_tensor"]
    values = onnx.numpy_helper.to_array(leaves.t) * 1.01
    leaves.t.CopyFrom(onnx.numpy_helper.from_array(values, leaves.t.name))
    return model.SerializeToString()


@pytest.fixture(scope="module")
def lightgbm_registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A private registry: lightgbm v1 as champion, v2 (alias `broken`) with a tampered graph
    and the failing report the real check gives it."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('compiled') / 'mlflow.db'}"
    training.train(uri, "champion", ("lightgbm",))
    [second] = training.train(uri, BROKEN, ("lightgbm",), compete=False)
    client = MlflowClient(uri, uri)
    loaded = load_version(client, uri, "lightgbm", LIGHTGBM, second.version, runtime="native")
    graph = tamper(open_registry(uri).file(LIGHTGBM, second.version, ONNX_FILE))
    held_out = records_of(training.load_split().x_test)
    records = [*held_out, *edge_records(loaded.schema, held_out)]
    checked = build.check_graph(loaded.estimator, loaded.schema, graph, records)
    assert not checked.passed
    log_beside_version(client, LIGHTGBM, second.version, files_of(checked))
    return uri


def test_a_graph_that_fails_parity_is_served_natively_with_the_reason_logged_and_listed(
    lightgbm_registry: str,
    caplog: pytest.LogCaptureFixture,
    make_settings: Callable[..., Settings],
) -> None:
    found = open_registry(lightgbm_registry).json_file(LIGHTGBM, "2", PARITY_FILE)
    assert found["converted"]
    assert not found["passed"]
    assert found["max_abs_diff"] > 1e-4
    caplog.set_level(logging.INFO, logger="streamfn.models.loading")
    for setting in (AUTO, "onnx"):
        cache = ModelCache(lightgbm_registry, BROKEN, 3600, {"lightgbm": LIGHTGBM},
                           runtime=setting)  # fmt: skip
        model = cache.get("lightgbm")
        assert (model.version, model.runtime_name) == ("2", "native")
        assert "the graph failed parity" in model.choice.reason
    [line, _] = [r for r in caplog.records if r.getMessage() == "model loaded"]
    assert line.levelno == logging.WARNING
    assert "the graph failed parity" in line.runtime_reason  # type: ignore[attr-defined]
    # GET /models says the same, from the same report.
    settings = make_settings(MLFLOW_TRACKING_URI=lightgbm_registry, MODEL_ALIAS=BROKEN,
                             MODELS=f"lightgbm={LIGHTGBM}")  # fmt: skip
    with TestClient(create_app(settings)) as client:
        [listed] = client.get("/models").json()["models"]
    assert listed["version"] == "2"
    assert listed["runtime"] == {"name": "native", "reason": model.choice.reason}
    healthy = make_settings(MLFLOW_TRACKING_URI=lightgbm_registry, MODELS=f"lightgbm={LIGHTGBM}")
    with TestClient(create_app(healthy)) as client:
        [champion] = client.get("/models").json()["models"]
    report_v1 = open_registry(lightgbm_registry).json_file(LIGHTGBM, "1", PARITY_FILE)
    assert champion["runtime"] == choose(AUTO, report_v1).to_json()


def test_compile_command_checks_and_logs_a_version_again(
    lightgbm_registry: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("MLFLOW_TRACKING_URI", lightgbm_registry)
    monkeypatch.setenv("MODELS", f"lightgbm={LIGHTGBM}")
    registry = open_registry(lightgbm_registry)
    before = registry.json_file(LIGHTGBM, "2", PARITY_FILE)
    # The tampered version compiled again: a fresh graph, checked on draws from its profile.
    assert main(["compile", "--model", "lightgbm", "--version", "2"]) == 0
    after = registry.json_file(LIGHTGBM, "2", PARITY_FILE)
    assert not before["passed"]
    assert after["passed"]
    assert after["sample"]["source"] == "2,000 drawn from its reference_profile.json"
    assert after["rows"] == after["sample"]["records"] > 2000  # plus the edge records
    err = capsys.readouterr().err
    assert "compiling LightGBM_Classifier v2" in err
    assert f"PREDICT_RUNTIME=auto: {choose(AUTO, after).runtime}" in err
    # By registered name, the alias's version, and rows of a file.
    data = tmp_path / "rows.csv"
    training.load_split().x_test.head(500).to_csv(data, index=False)
    assert main(["compile", "--model", LIGHTGBM, "--data", str(data)]) == 0
    again = registry.json_file(LIGHTGBM, "1", PARITY_FILE)
    assert (
        again["sample"]["source"] == "500 rows given, 1,500 drawn from its reference_profile.json"
    )
    assert main(["compile", "--model", "lightgbm", "--version", "9"]) == Exit.CONFIG  # no such one


# ---- models of the user's --------------------------------------------------------------------


def wine() -> tuple[Any, Any]:
    """A user's pipeline (scaler and logistic regression on 13 numbers) and its data."""
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_wine(return_X_y=True, as_frame=True)
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y), x


def test_a_users_scikit_learn_pipeline_compiles_and_passes_parity() -> None:
    from streamfn.models.schemas import Column, ModelSchema

    model, x = wine()
    # As its signature says: every input required (the pipeline has no imputer).
    columns = tuple(Column(c, "number", required=True) for c in x.columns)
    schema = ModelSchema("wine", "Wine", "1", columns)
    compiled = build.compile_model(model, schema, records_of(x))
    assert compiled.graph is not None
    assert compiled.passed, compiled.report
    assert compiled.report["classes_identical"] == compiled.report["rows"]


def test_a_model_logged_as_onnx_is_served_by_onnx_runtime_directly(
    lightgbm_registry: str,
) -> None:
    import mlflow
    from mlflow.models import infer_signature
    from skl2onnx import to_onnx

    model, x = wine()
    graph = to_onnx(model, x.to_numpy(dtype="float32")[:1])  # one float input "X", as is usual
    mlflow.set_tracking_uri(lightgbm_registry)
    client = MlflowClient(lightgbm_registry)
    signature = infer_signature(x, model.predict(x))
    # In the registry's own experiment: its artifacts beside the store, not in the working folder.
    with mlflow.start_run(experiment_id=training.ensure_experiment(client, lightgbm_registry)):
        info = mlflow.onnx.log_model(graph, name="model", signature=signature,
                                     registered_model_name="Wine_Onnx")  # fmt: skip
    client.set_registered_model_alias("Wine_Onnx", "champion", str(info.registered_model_version))
    served = {}
    for setting in (AUTO, "native"):
        cache = ModelCache(lightgbm_registry, "champion", 3600, {"wine": "Wine_Onnx"},
                           runtime=setting)  # fmt: skip
        served[setting] = cache.get("wine")
    direct, pyfunc = served[AUTO], served["native"]
    assert direct.runtime_name == "onnx"
    assert direct.choice.reason == "the version is an ONNX model: ONNX Runtime serves it directly"
    assert pyfunc.runtime_name == "native"  # MLflow's pyfunc of the onnx flavour
    records = records_of(x)
    predicted = direct.predict(direct.columns(records))
    assert predicted == pyfunc.predict(pyfunc.columns(records))
    agreeing = sum(int(a == b) for a, b in zip(predicted, model.predict(x), strict=True))
    assert agreeing >= 0.99 * len(x)  # a float32 graph of the same model
