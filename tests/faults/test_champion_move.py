"""Fault 7: the champion alias moves to a new version mid-stream."""

from __future__ import annotations

import time

import pytest
from mlflow import MlflowClient

from streamfn.core.settings import SEED_MODELS
from tests.faults.parts import Registry
from tests.faults.pipeline import Pipeline
from tests.faults.tally import epoch_s

pytestmark = [pytest.mark.faults, pytest.mark.slow]

MOVED = "knn"
LOAD_S = 3.0  # time to load a version, beside the batches
REFRESH_S = 1.0


def new_version(client: MlflowClient, name: str) -> str:
    """Register another version of a model from its champion's artifacts."""
    current = client.get_model_version_by_alias(name, "champion")
    # MLflow 3 sources are logged models (`models:/m-...`); a server wants their id as well.
    model_id = current.source.removeprefix("models:/")
    created = client.create_model_version(
        name, current.source, run_id=current.run_id, model_id=model_id
    )
    return str(created.version)


def test_champion_moves_mid_stream(pipeline: Pipeline, registry: Registry) -> None:
    """Rows switch version once the alias is re-resolved; each poller loads the new one once."""
    pipeline.start("a", "b", MODEL_REFRESH_S=str(REFRESH_S))
    pipeline.finish(pipeline.produce(1500, seed=707))
    pipeline.drain()
    client, name = MlflowClient(registry.uri), SEED_MODELS[MOVED]
    old = registry.champions[MOVED]
    new = new_version(client, name)
    client.set_registered_model_alias(name, "champion", new)
    moved_at = time.time()
    try:
        # Paced to last well past the refresh and the load, so rows of both versions follow.
        pipeline.finish(pipeline.produce(1500, seed=708, rate=200))
        pipeline.drain()
    finally:  # later cases share the registry: give them back the champion they expect
        client.set_registered_model_alias(name, "champion", old)
    tally = pipeline.tally("champion_moved")
    rows = [r for r in pipeline.rows() if r["model"] == MOVED]
    before = {r["model_version"] for r in rows if epoch_s(r["predicted_at"]) < moved_at}
    # A poller re-resolves the alias at most REFRESH_S after the move, and loads the new version
    # beside its batches (they go on with the old one meanwhile).
    switched = moved_at + REFRESH_S + LOAD_S
    after = {r["model_version"] for r in rows if epoch_s(r["predicted_at"]) >= switched}
    assert (before, after) == ({old}, {new}), pipeline.explain(tally)
    for poller in ("a", "b"):
        loads = pipeline.model_loads(poller)
        assert (loads.get((MOVED, old)), loads.get((MOVED, new))) == (1.0, 1.0), (poller, loads)
    pipeline.check(tally)
