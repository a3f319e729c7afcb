"""Reason codes and estimates as the infer function writes them: in the rows, the results
(GET /predictions) and the window counts, each counted once, and equal to what the model, the
calibration and the rows themselves say."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from typing import Any

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from streamfn.app import create_app
from streamfn.core.shares import in_share
from streamfn.infer import handler
from streamfn.infer.explaining import PURPOSE
from streamfn.models import calibration
from streamfn.models.explain import predicted_index
from streamfn.models.seed import FEATURE_NAMES
from streamfn.monitor.counts import SCALE
from tests.conftest import bucket_rows
from tests.factories import batch_event, sqs_record
from tests.infer.test_runtimes import window_counts
from tests.shadowed import sampled_records

pytestmark = pytest.mark.slow

T0 = 1_796_200_000_000
ALL = len(FEATURE_NAMES)  # every input a reason: the rows then hold every contribution


def events(
    records: list[dict[str, Any]], per: int, model: str = "lightgbm"
) -> list[dict[str, Any]]:
    """Batches of two messages of `per` records each."""
    messages = [sqs_record(f"{T0 + i}-0", model, records[i * per : (i + 1) * per])
                for i in range(len(records) // per)]  # fmt: skip
    return [batch_event(*messages[i : i + 2]) for i in range(0, len(messages), 2)]


def handle_all(ctx: handler.InferContext, batches: list[dict[str, Any]]) -> None:
    for event in batches:
        assert handler.handle(event, ctx) == {"batchItemFailures": []}


def test_every_contribution_in_the_rows_results_and_windows_is_the_models_own(
    make_settings: Any, s3: Any, redis_url: str
) -> None:
    settings = make_settings(OUTPUT_EXPLANATIONS=ALL, OUTPUT_PROBABILITIES="true",
                             MONITOR_WINDOW_S=3600)  # fmt: skip
    records = sampled_records(120, seed=31)
    batches = events(records, 20)
    ctx = handler.build_context(settings)
    handle_all(ctx, batches)
    rows = sorted(bucket_rows(s3), key=lambda r: (r["message_id"], int(r["record_index"])))
    assert len(rows) == 120
    model = ctx.models.get("lightgbm")
    # The rows' reasons are the library's contributions of each record, largest first.
    frame = model.frame(records)
    explainer = model.explainer
    assert explainer is not None
    direct = explainer.contributions(frame, predicted_index(model.estimator, frame)).values
    for row, expected in zip(rows, direct, strict=True):
        names = [row[f"reason_{i}"] for i in range(1, ALL + 1)]
        values = [float(row[f"contribution_{i}"]) for i in range(1, ALL + 1)]
        assert values == sorted(values, reverse=True)
        assert sorted(names) == sorted(FEATURE_NAMES)
        by_name = dict(zip(names, values, strict=True))
        assert [by_name[n] for n in FEATURE_NAMES] == pytest.approx(expected.tolist(), abs=1e-9)
    # The window's sums are the rows': |contribution| per input, expected cells per prediction.
    counts = window_counts(redis_url)["lightgbm"]
    assert counts["xn"] == 120
    for name in FEATURE_NAMES:
        summed = sum(abs(float(r[f"contribution_{i}"])) for r in rows for i in range(1, ALL + 1)
                     if r[f"reason_{i}"] == name)  # fmt: skip
        assert counts[f"x:{name}"] == pytest.approx(summed * SCALE, abs=len(batches))
    calibrated = calibration.apply(
        model.calibration,  # type: ignore[arg-type]
        np.array(
            [[float(r[f"proba_{label}"]) for label in ("Low", "Medium", "High")] for r in rows]
        ),
    )
    cells: defaultdict[str, float] = defaultdict(float)
    for row, shares in zip(rows, calibrated, strict=True):
        for cls, share in zip(model.classes, shares, strict=True):
            cells[f"e:{cls}:{row['prediction']}"] += share
    for key, total in cells.items():
        assert counts[key] == pytest.approx(total * SCALE, abs=len(batches) + 1), key
    # A redelivery writes nothing and counts nothing again.
    before = dict(counts)
    handle_all(ctx, batches)
    assert window_counts(redis_url)["lightgbm"] == before
    assert len(bucket_rows(s3)) == 120
    # GET /predictions answers with each record's reasons.
    message_id = rows[0]["message_id"]
    with TestClient(create_app(settings)) as client:
        answer = client.get(f"/predictions/{message_id}").json()
    mine = [r for r in rows if r["message_id"] == message_id]
    assert len(answer["reasons"]) == len(mine) == 20
    assert [c["input"] for c in answer["reasons"][0]] == [mine[0][f"reason_{i}"]
                                                          for i in range(1, ALL + 1)]  # fmt: skip


def test_explain_share_takes_the_same_messages_each_time_and_the_rest_stay_empty(
    make_settings: Any, s3: Any, redis_url: str
) -> None:
    settings = make_settings(OUTPUT_EXPLANATIONS=2, EXPLAIN_SHARE=0.5, MONITOR_WINDOW_S=3600)
    records = sampled_records(400, seed=32)
    ctx = handler.build_context(settings)
    handle_all(ctx, events(records, 10))
    rows = bucket_rows(s3)
    explained = {r["message_id"] for r in rows if r["reason_1"]}
    chosen = {r["message_id"] for r in rows if in_share(r["message_id"], 0.5, PURPOSE)}
    assert explained == chosen
    assert 8 <= len(chosen) <= 32  # about half of the 40 messages
    assert all(r["contribution_2"] == "" for r in rows if r["message_id"] not in chosen)
    assert "reason_3" not in rows[0]
    assert window_counts(redis_url)["lightgbm"]["xn"] == 10 * len(chosen)
    r = redis.Redis.from_url(redis_url)
    assert all(b"reasons" not in (r.get(settings.keys.result(i)) or b"")
               for i in {row["message_id"] for row in rows} - chosen)  # fmt: skip


def test_a_model_without_an_exact_method_gets_no_reasons_and_one_log_line(
    make_settings: Any, s3: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="streamfn.models.cache")
    settings = make_settings(OUTPUT_EXPLANATIONS=3)
    ctx = handler.build_context(settings)
    handle_all(ctx, events(sampled_records(40, seed=33), 10, model="svm"))
    rows = bucket_rows(s3)
    assert len(rows) == 40
    assert not any(k.startswith(("reason_", "contribution_")) for k in rows[0])
    told = [r for r in caplog.records if r.getMessage() == "no reason codes for this version"]
    assert len(told) == 1  # once per loaded version, not per batch
    assert "SVC has no exact attribution" in told[0].error  # type: ignore[attr-defined]
    assert Counter(r.model for r in told) == {"svm": 1}  # type: ignore[attr-defined]
