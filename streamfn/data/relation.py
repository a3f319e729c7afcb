"""How a record's Burn Rate moves when its inputs move, under the producer's copula.

The copula (streamfn.data.synth) draws the numeric inputs and Burn Rate jointly as normal
scores z ~ N(0, R). Given the inputs' scores, Burn Rate's score is Gaussian with mean b·z_inputs
(b = R_inputs⁻¹ r_target, a regression in score space) and a residual independent of the inputs.
So when a record's inputs move, the label that keeps P(label | inputs) exactly the copula's is the
one whose score moves by b·Δz_inputs with the same residual: `follow` computes it, each value's
score the middle of its step of the empirical distribution. This is what `streamfn produce
--drift-labels follow` and `--concept` use; a line fitted to the raw values would not do (the
marginals are far from normal), and estimates from calibrated probabilities would then be judged
against labels from another relation than the data's.

Standard library only: the producer function stays a small package.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from statistics import NormalDist
from typing import Any

from streamfn.data.synth import COPULA, Marginal, Profile
from streamfn.models.seed import NUMERIC, TARGET

_NORMAL = NormalDist()


def score(marginal: Marginal, value: float) -> float:
    """The normal score of the middle of `value`'s step in its empirical distribution (a value
    between two of the dataset's is taken as the next one up)."""
    i = min(bisect.bisect_left(marginal.values, value), len(marginal.values) - 1)
    low = marginal.cumulative[i - 1] if i else 0.0
    return _NORMAL.inv_cdf(min(max((low + marginal.cumulative[i]) / 2, 1e-9), 1 - 1e-9))


def solve(matrix: list[list[float]], vector: list[float]) -> list[float]:
    """x with matrix·x = vector (Gaussian elimination with partial pivoting)."""
    n = len(vector)
    rows = [[*matrix[i], vector[i]] for i in range(n)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(rows[r][col]))
        rows[col], rows[pivot] = rows[pivot], rows[col]
        for r in range(col + 1, n):
            factor = rows[r][col] / rows[col][col]
            rows[r] = [a - factor * b for a, b in zip(rows[r], rows[col], strict=True)]
    found = [0.0] * n
    for i in reversed(range(n)):
        found[i] = (rows[i][n] - sum(rows[i][j] * found[j] for j in range(i + 1, n))) / rows[i][i]
    return found


class Relation:
    """Burn Rate's relation to the numeric inputs under a fitted copula."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        target = COPULA.index(TARGET)
        inputs = [COPULA.index(name) for name in NUMERIC]
        r = profile.correlation
        weights = solve([[r[i][j] for j in inputs] for i in inputs], [r[i][target] for i in inputs])
        self.weights = dict(zip(NUMERIC, weights, strict=True))

    def follow(
        self, rate: float | None, before: Mapping[str, Any], after: Mapping[str, Any]
    ) -> float | None:
        """The Burn Rate of a record whose inputs moved from `before` to `after` (None stays
        None: a record the dataset gives no label)."""
        if rate is None:
            return None
        marginals = self.profile.marginals
        z = score(marginals[TARGET], rate)
        for name, weight in self.weights.items():
            old, new = before.get(name), after.get(name)
            if old is not None and new is not None and old != new:
                z += weight * (score(marginals[name], new) - score(marginals[name], old))
        return marginals[TARGET].quantile(_NORMAL.cdf(z))
