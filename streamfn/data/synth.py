"""Synthetic employee records for the producer: a Gaussian copula fitted to the dataset.

The fit (`fit`, numpy and pandas, run once by `python -m streamfn.synth`) keeps a small profile,
committed as `synth_profile.json`: each numeric feature's empirical distribution (its distinct
values and their cumulative shares), its null share, the normal-scores correlation matrix of the
numeric features, and the shares of the three categories. Sampling (`RecordSampler`) needs only
the standard library, so the producer function stays a small package:

- draw z ~ N(0, R) (R the fitted correlation, through its Cholesky factor), map each z_j through
  Φ to a uniform, and read the feature's value off its empirical inverse CDF. Every value is one
  the dataset has (integer columns stay integers, bounds hold) and the pairwise rank correlations
  follow the dataset's, yet no row is copied: each feature is drawn on its own;
- leave a feature out with its null share (the model pipelines impute it);
- draw each category independently with its share (the dataset's categories are independent of
  the rest).
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamfn.models.seed import CATEGORICAL, EMPLOYEE_ID, NUMERIC, TARGET

PROFILE_PATH = Path(__file__).with_name("synth_profile.json")
# Synthetic ids look like the dataset's ("fffe" + UTF-16-LE hex of a number) but use 7-digit
# numbers, which the dataset's 5-digit ids never reach: a produced record is never taken for a
# real employee.
_ID_LOW, _ID_HIGH = 1_000_000, 9_999_999
_SQRT2 = math.sqrt(2.0)
# The copula's columns: the numeric features, then Burn Rate, drawn jointly with them so that a
# record's label (`streamfn produce --labels`) follows the dataset's own relation.
COPULA: tuple[str, ...] = (*NUMERIC, TARGET)


@dataclass(frozen=True)
class Marginal:
    """One numeric feature: its distinct values, their cumulative shares, its null share."""

    values: tuple[float, ...]
    cumulative: tuple[float, ...]
    null_share: float

    def quantile(self, u: float) -> float:
        """The value at cumulative share u (the empirical inverse CDF)."""
        return self.values[min(bisect.bisect_left(self.cumulative, u), len(self.values) - 1)]


@dataclass(frozen=True)
class Profile:
    """What the sampler needs of the dataset; small enough to commit and ship."""

    marginals: dict[str, Marginal]
    correlation: tuple[tuple[float, ...], ...]  # normal scores, in COPULA order
    categories: dict[str, dict[str, float]]  # feature -> value -> share

    def to_json(self) -> str:
        """The profile as deterministic, human-readable JSON."""
        document = {
            "numeric": {
                name: {
                    "values": list(m.values),
                    "cumulative": [round(c, 6) for c in m.cumulative],
                    "null_share": round(m.null_share, 6),
                }
                for name, m in self.marginals.items()
            },
            "correlation": [[round(v, 4) for v in row] for row in self.correlation],
            "categories": {
                name: {v: round(s, 6) for v, s in shares.items()}
                for name, shares in self.categories.items()
            },
        }
        return json.dumps(document, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Profile:
        """Read a profile written by to_json."""
        document = json.loads(text)
        marginals = {
            name: Marginal(tuple(m["values"]), tuple(m["cumulative"]), m["null_share"])
            for name, m in document["numeric"].items()
        }
        if tuple(marginals) != COPULA or tuple(document["categories"]) != CATEGORICAL:
            raise ValueError("the profile's features are not the feature table's")
        correlation = tuple(tuple(row) for row in document["correlation"])
        return cls(marginals, correlation, document["categories"])


def load_profile(path: Path = PROFILE_PATH) -> Profile:
    """The committed profile."""
    return Profile.from_json(path.read_text())


def fit(frame: Any) -> Profile:
    """Fit the profile to a dataset frame (pandas; only the fit needs numpy and pandas)."""
    import numpy as np
    import pandas as pd
    from scipy.special import ndtri

    marginals: dict[str, Marginal] = {}
    scores: dict[str, pd.Series] = {}
    for name in COPULA:
        column = frame[name]
        present = column.dropna()
        shares = present.value_counts(normalize=True).sort_index()
        cumulative = np.cumsum(shares.to_numpy())
        cumulative[-1] = 1.0
        values = tuple(int(v) if float(v).is_integer() else float(v) for v in shares.index)
        marginals[name] = Marginal(values, tuple(cumulative.tolist()), float(column.isna().mean()))
        # Normal scores of the mid-ranks: what the copula correlates.
        scores[name] = pd.Series(ndtri((present.rank() - 0.5) / len(present)), present.index)
    correlation = pd.DataFrame(scores).corr().to_numpy()
    categories = {
        name: {str(v): float(s) for v, s in frame[name].value_counts(normalize=True).items()}
        for name in CATEGORICAL
    }
    return Profile(marginals, tuple(map(tuple, correlation.tolist())), categories)


def cholesky(matrix: tuple[tuple[float, ...], ...]) -> list[list[float]]:
    """The lower Cholesky factor of a symmetric positive-definite matrix."""
    n = len(matrix)
    lower = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1):
            partial = sum(lower[i][k] * lower[j][k] for k in range(j))
            if i == j:
                pivot = matrix[i][i] - partial
                if pivot <= 0:
                    raise ValueError("the correlation matrix is not positive definite")
                lower[i][j] = math.sqrt(pivot)
            else:
                lower[i][j] = (matrix[i][j] - partial) / lower[j][j]
    return lower


class EmployeeIds:
    """Ids in the dataset's style that no dataset row has, none repeated within a run.

    They walk a seeded permutation of the id range (n -> a*n + b mod its size, a coprime to the
    size): every id differs from the others, with nothing remembered.
    """

    def __init__(self, rng: random.Random) -> None:
        self._size = _ID_HIGH - _ID_LOW + 1
        self._step = next(
            a for a in iter(lambda: rng.randrange(1, self._size), 0) if math.gcd(a, self._size) == 1
        )
        self._offset = rng.randrange(self._size)
        self._issued = 0

    def next(self) -> str:
        """The next id."""
        position = (self._step * self._issued + self._offset) % self._size
        self._issued += 1
        return "fffe" + str(_ID_LOW + position).encode("utf-16-le").hex()


class RecordSampler:
    """Draws canonical records that follow the profile; reproducible for a given seed."""

    def __init__(self, profile: Profile, seed: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.profile = profile
        self.ids = EmployeeIds(self.rng)
        # Row i of the factor has i + 1 non-zero entries; keep only those.
        lower = cholesky(profile.correlation)
        self._numeric = [
            (name, tuple(row[: i + 1]), profile.marginals[name])
            for i, (name, row) in enumerate(zip(COPULA, lower, strict=True))
        ]
        self._categories = [
            (name, list(shares), list(itertools.accumulate(shares.values())))
            for name, shares in profile.categories.items()
        ]

    def employee_id(self) -> str:
        """An id in the dataset's style that no dataset row and no earlier record of ours has."""
        return self.ids.next()

    def labelled(self) -> tuple[dict[str, Any], float | None]:
        """One record (an employee id, the three categories, the numeric features not left
        out) and its Burn Rate (None where the dataset would have none)."""
        gauss, uniform, erf = self.rng.gauss, self.rng.random, math.erf
        normals = [gauss(0.0, 1.0) for _ in self._numeric]
        record: dict[str, Any] = {EMPLOYEE_ID: self.employee_id()}
        for name, values, cumulative in self._categories:
            record[name] = self.rng.choices(values, cum_weights=cumulative)[0]
        for name, row, marginal in self._numeric:
            if uniform() < marginal.null_share:
                continue  # absent: the model imputes it
            z = sum([w * e for w, e in zip(row, normals, strict=False)])
            record[name] = marginal.quantile(0.5 * (1.0 + erf(z / _SQRT2)))  # Φ(z)
        return record, record.pop(TARGET, None)

    def record(self) -> dict[str, Any]:
        """One record, without its label."""
        return self.labelled()[0]

    def records(self, count: int) -> list[dict[str, Any]]:
        """`count` records."""
        return [self.record() for _ in range(count)]


def main() -> int:
    """Refit the committed profile from the committed dataset."""
    from streamfn.data import dataset

    PROFILE_PATH.write_text(fit(dataset.load()).to_json())
    print(PROFILE_PATH)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
