"""The infer function's per-record costs behind two choices: LightGBM's size, the frame's build.

- LightGBM: held-out macro F1 and predict time per record (whole pipeline, one thread) of the
  configuration in streamfn.training against the larger one it replaced (300 trees, 31 leaves);
- the model's input frame: `streamfn.infer.models.frame_of` (column by column) against a frame built
  row by row and converted afterwards.

Run: .venv/bin/python -m benchmarks.bench_infer   (trains two LightGBM pipelines, ~30 s)
"""

from __future__ import annotations

import time
from collections.abc import Callable

import lightgbm
import numpy as np
import pandas as pd

from streamfn.data import training
from streamfn.data.synth import RecordSampler, load_profile
from streamfn.models.loaded import frame_of
from streamfn.models.schemas import seed_schema
from streamfn.models.seed import FEATURE_NAMES, NUMERIC

SEED = seed_schema()

REPLACED = {"n_estimators": 300, "learning_rate": 0.05, "num_leaves": 31}


def best_us(call: Callable[[], object], per: int, repeats: int = 5) -> float:
    """The best of `repeats` timings of `call`, in µs per item of `per` items."""
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times) / per * 1e6


def frame_by_rows(records: list[dict[str, object]]) -> pd.DataFrame:
    """The row-by-row build frame_of replaced, kept here as the yardstick."""
    rows = [[record.get(name) for name in FEATURE_NAMES] for record in records]
    frame = pd.DataFrame(rows, columns=list(FEATURE_NAMES), dtype=object)
    frame = frame.where(frame.notna(), np.nan)
    return frame.astype(dict.fromkeys(NUMERIC, "float64"))


def main() -> int:
    split = training.load_split()
    print("| LightGBM | macro F1 | µs per record (predict, 1 thread) |\n|---|---:|---:|")
    for label, params in (("in use", training.HYPERPARAMETERS["lightgbm"]), ("replaced", REPLACED)):
        classifier = lightgbm.LGBMClassifier(random_state=training.SEED, verbose=-1, n_jobs=1,
                                             **params)  # fmt: skip
        pipeline = training.build_pipeline(classifier).fit(split.x_train, split.y_train)
        score = training.evaluate(split.y_test, pipeline.predict(split.x_test))[training.SCORE]
        us = best_us(lambda p=pipeline: p.predict(split.x_test), len(split.x_test))
        print(f"| {label}: {params} | {score:.4f} | {us:.1f} |")
    records = RecordSampler(load_profile(), seed=11).records(10_000)
    print("\n| frame of 10,000 records | µs per record |\n|---|---:|")
    column_us = best_us(lambda: frame_of(SEED, records), 10_000)
    print(f"| column by column (frame_of) | {column_us:.2f} |")
    print(f"| row by row, then converted | {best_us(lambda: frame_by_rows(records), 10_000):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
