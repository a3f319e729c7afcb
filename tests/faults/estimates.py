"""The estimate and attribution sums of the windows against the bucket's rows: with every input
a reason (OUTPUT_EXPLANATIONS=13) and the probabilities written (OUTPUT_PROBABILITIES), each
window's `x:<input>` sums and `e:<true>:<predicted>` cells can be recomputed from the rows alone,
so a row counted twice or not at all shows."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
import redis

from streamfn.core.keys import Keys
from streamfn.core.settings import SEED_MODELS
from streamfn.models import calibration
from streamfn.models.registry import open_registry
from streamfn.models.seed import FEATURE_NAMES
from streamfn.monitor.counts import SCALE
from streamfn.monitor.windowing import window_of
from tests.faults.tally import epoch_s

EXPLAINED_ENV = {"OUTPUT_EXPLANATIONS": str(len(FEATURE_NAMES)), "OUTPUT_PROBABILITIES": "true"}

Where = tuple[str, str, int]  # model, version, window start


def expected_sums(
    rows: Sequence[Mapping[str, str]], window_s: float, registry_uri: str
) -> tuple[dict[Where, Counter[str]], Counter[Where]]:
    """Per window: the sums the rows say (in millionths, unrounded), and the number of objects
    (batches) whose rounded sums went into it, one rounding each at most."""
    sums: dict[Where, Counter[str]] = defaultdict(Counter)
    batches: defaultdict[Where, set[str]] = defaultdict(set)
    registry = open_registry(registry_uri)
    calibrations: dict[tuple[str, str], dict | None] = {}
    for row in rows:
        model, version = row["model"], row["model_version"]
        where = (model, version, window_of(int(epoch_s(row["received_at"]) * 1000), window_s))
        batches[where].add(row["predicted_at"])
        if row.get("reason_1"):
            sums[where]["xn"] += 1
            for i in range(1, len(FEATURE_NAMES) + 1):
                sums[where][f"x:{row[f'reason_{i}']}"] += (
                    abs(float(row[f"contribution_{i}"])) * SCALE
                )
        probabilities = sorted(k for k in row if k.startswith("proba_"))
        if (model, version) not in calibrations:
            calibrations[(model, version)] = registry.json_file(
                SEED_MODELS[model], version, calibration.FILE
            )
        found = calibrations[(model, version)]
        if found is None or found["source"] != "predict_proba" or not probabilities:
            continue
        labels = ("proba_Low", "proba_Medium", "proba_High")  # the seed's classes 0, 1, 2
        shares = calibration.apply(found, np.array([[float(row[k]) for k in labels]]))[0]
        for cls, share in zip(found["classes"], shares, strict=True):
            sums[where][f"e:{cls}:{row['prediction']}"] += share * SCALE
    return sums, Counter({w: len(b) for w, b in batches.items()})


def check_sums(
    rows: Sequence[Mapping[str, str]], r: redis.Redis, keys: Keys, window_s: float,
    registry_uri: str,
) -> int:  # fmt: skip
    """Assert each window's estimate and attribution fields equal the rows' sums, within one
    rounding per batch; the fields checked."""
    expected, batches = expected_sums(rows, window_s, registry_uri)
    checked = 0
    for (model, version, start), fields in expected.items():
        counted = r.hgetall(keys.window(model, version, start))
        for field, value in fields.items():
            found = int(counted.get(field, 0))
            slack = 0 if field == "xn" else batches[(model, version, start)]
            assert abs(found - value) <= slack, (
                f"{model} v{version} window {start}: {field} counted {found}, the rows say "
                f"{value:.1f} (slack {slack})"
            )
            checked += 1
        listed = {k for k in counted if k.startswith(("x:", "e:")) or k == "xn"}
        assert listed <= set(fields), f"fields no row accounts for: {sorted(listed - set(fields))}"
    return checked
