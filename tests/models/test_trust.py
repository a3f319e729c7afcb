"""The registry is a code-execution boundary: a version whose load would run code (a pickle, a
pyfunc of its own) is refused unless MODEL_FLAVORS lists its flavour."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import orjson
import pytest
import yaml
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from mlflow.pyfunc import PythonModel

from streamfn.app import create_app
from streamfn.core.plugins import parse_flavours
from streamfn.core.settings import ConfigError, Settings
from streamfn.data.training import ensure_experiment
from streamfn.models import trust
from streamfn.models.cache import ModelCache, ModelRefusedError
from tests.models.conftest import WINE, Brought

SKOPS_SKLEARN = {"loader_module": "mlflow.sklearn"}, {
    "serialization_format": "skops", "code": None,
    "skops_trusted_types": ["numpy.dtype", "sklearn.impute._iterative.IterativeImputer",
                            "lightgbm.sklearn.LGBMClassifier", "collections.OrderedDict"],
}  # fmt: skip


def mlmodel(flavour: str, pyfunc: dict[str, Any], conf: dict[str, Any] | None = None) -> str:
    """An MLmodel file with a python_function flavour and one other (unless conf is None)."""
    flavors: dict[str, Any] = {"python_function": pyfunc}
    if conf is not None:
        flavors[flavour] = conf
    return yaml.safe_dump({"flavors": flavors})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (mlmodel("sklearn", *SKOPS_SKLEARN), "sklearn"),  # what `streamfn train` logs
        (mlmodel("sklearn", {"loader_module": "mlflow.sklearn"},
                 {"serialization_format": "cloudpickle"}), "sklearn:cloudpickle"),
        (mlmodel("sklearn", {"loader_module": "mlflow.sklearn"}, {}), "sklearn:pickle"),
        (mlmodel("lightgbm", {"loader_module": "mlflow.lightgbm"},
                 {"model_class": "lightgbm.basic.Booster"}), "lightgbm"),
        (mlmodel("lightgbm", {"loader_module": "mlflow.lightgbm"},
                 {"model_class": "lightgbm.sklearn.LGBMClassifier"}), "lightgbm:cloudpickle"),
        (mlmodel("onnx", {"loader_module": "mlflow.onnx"}, {"onnx_version": "1.17"}), "onnx"),
        (mlmodel("xgboost", {"loader_module": "mlflow.xgboost"}, {"model_format": "json"}),
         "xgboost"),
        # A pyfunc of its own code, a loader that is not the flavour's, code paths, types to
        # trust from elsewhere: each runs code that is not scikit-learn's.
        (mlmodel("", {"loader_module": "mlflow.pyfunc.model", "python_model": "m.pkl"}),
         "python_function"),
        (mlmodel("sklearn", {"loader_module": "evil"}, SKOPS_SKLEARN[1]), "python_function"),
        (mlmodel("sklearn", {"loader_module": "mlflow.sklearn", "code": "code"},
                 SKOPS_SKLEARN[1]), "python_function"),
        (mlmodel("sklearn", {"loader_module": "mlflow.sklearn"},
                 {**SKOPS_SKLEARN[1], "skops_trusted_types": ["builtins.eval"]}),
         "python_function"),
        ("{}", "python_function"),
    ],
    ids=["skops", "cloudpickle", "pickle", "booster", "lgbm-pickle", "onnx", "xgboost",
         "pyfunc", "other-loader", "code-paths", "foreign-types", "no-flavour"],
)  # fmt: skip
def test_a_versions_flavour_is_read_from_its_mlmodel(text: str, expected: str) -> None:
    assert trust.flavour_of(text) == expected


def test_the_default_loads_what_streamfn_trains_and_nothing_that_runs_code(
    sqlite_registry: str,
) -> None:
    assert {"sklearn", "lightgbm", "onnx"} == trust.DEFAULT
    # The seed's three versions, as `streamfn train` logs them, are all skops scikit-learn.
    client = MlflowClient(sqlite_registry, sqlite_registry)
    for name in ("SVC", "Knn_Classifier", "LightGBM_Classifier"):
        version = client.get_model_version_by_alias(name, "champion")
        source = client.get_model_version_download_uri(name, version.version)
        text = Path(mlflow.artifacts.download_artifacts(f"{source}/MLmodel")).read_text()
        assert trust.check(text, trust.DEFAULT, name) == "sklearn", name


def test_an_unknown_flavour_fails_at_start_naming_the_variable(
    make_settings: Callable[..., Settings],
) -> None:
    with pytest.raises(ConfigError, match=r"MODEL_FLAVORS='sklearn,pikle'.*unknown flavour pikle"):
        make_settings(MODEL_FLAVORS="sklearn,pikle")


class Marker(PythonModel):
    """A pyfunc whose load runs its own code: it touches a file, as an attacker's would more."""

    def load_context(self, context: Any) -> None:
        Path(context.model_config["marker"]).touch()

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        return [0] * len(model_input)


@pytest.fixture(scope="module")
def marker_model(sqlite_registry: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`Marker_Model`, champion, registered once; the file its load would touch."""
    marker = tmp_path_factory.mktemp("marker") / "loaded"
    client = MlflowClient(sqlite_registry, sqlite_registry)
    signature = mlflow.models.get_model_info("models:/SVC@champion").signature
    mlflow.set_tracking_uri(sqlite_registry)
    with mlflow.start_run(experiment_id=ensure_experiment(client, sqlite_registry)):
        info = mlflow.pyfunc.log_model(name="marker", python_model=Marker(), signature=signature,
                                       model_config={"marker": str(marker)},
                                       pip_requirements=["mlflow"])  # fmt: skip
    version = mlflow.register_model(f"models:/{info.model_id}", "Marker_Model").version
    client.set_registered_model_alias("Marker_Model", "champion", version)
    return marker


def test_a_pyfunc_champion_is_refused_before_its_code_runs(
    sqlite_registry: str, marker_model: Path, make_settings: Callable[..., Settings]
) -> None:
    models = {"marker": "Marker_Model"}
    with pytest.raises(ModelRefusedError, match=r"python_function.*MODEL_FLAVORS"):
        ModelCache(sqlite_registry, "champion", 30, models).get("marker")
    assert not marker_model.exists()
    # The ingest answers 503 for it, naming the variable; the other models are served.
    settings = make_settings(MODELS="svm=SVC,marker=Marker_Model")
    with TestClient(create_app(settings)) as client:
        refused = client.post(
            "/predict_stream?model=marker",
            content=orjson.dumps({"data": [{"Sleep Hours": 7}]}),
            headers={"content-type": "application/json"},
        )
        assert refused.status_code == 503
        assert "MODEL_FLAVORS" in refused.json()["detail"]
        listed = {m["model"]: m for m in client.get("/models").json()["models"]}
        assert "python_function" in listed["marker"]["error"]
        assert listed["svm"]["version"] == "1"
    assert not marker_model.exists()
    # Listed on purpose, it loads, and its code runs: what the refusal kept from happening.
    allowed = parse_flavours("sklearn,python_function")
    assert ModelCache(sqlite_registry, "champion", 30, models, allowed).get("marker")
    assert marker_model.exists()


@pytest.mark.slow
def test_a_cloudpickled_model_answers_503_until_listed(
    make_settings: Callable[..., Settings], brought: Brought
) -> None:
    models = f"svm=SVC,wine={WINE}"
    for flavours, status in (("sklearn,lightgbm,onnx", 503), (brought.flavours, 202)):
        settings = make_settings(MODELS=models, MODEL_FLAVORS=flavours)
        record = brought.wine.head(1).to_dict(orient="records")
        with TestClient(create_app(settings)) as client:
            answer = client.post("/predict_stream?model=wine", content=orjson.dumps(
                {"data": record}), headers={"content-type": "application/json"})  # fmt: skip
        assert answer.status_code == status, answer.text
        if status == 503:
            assert "sklearn:cloudpickle" in answer.json()["detail"]
            assert "MODEL_FLAVORS" in answer.json()["detail"]
