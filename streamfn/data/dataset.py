"""Seeded synthetic stand-in for the HR burn-out dataset (`data/enriched_employee_dataset.csv`).

The real file (the public "Are Your Employees Burning Out?" data, 22,750 employees who joined in
2008, enriched with 8 synthetic columns) is not redistributable, so the project ships this
stand-in: same schema, and the published null counts, category counts, means, standard deviations,
bounds and correlations with Burn Rate. `python -m streamfn.dataset` regenerates the committed CSV
byte for byte.

Generative model (a one-factor Gaussian copula):
- every employee has a latent burn-out factor z ~ N(0, 1). Burn Rate is z mapped onto its
  distribution; each correlated feature's score is (signed loading) x z + independent noise, so
  the features are noisy views of z, related to each other only through it, and the class of
  Burn Rate is learnable from them but not a deterministic function of them;
- a column's values are assigned by rank: its non-null rows, sorted by score, receive the sorted
  values of a fixed distribution on the column's grid (integers, or 1 or 2 decimals), namely the
  exponential tilt p ~ base * exp(a*x + b*x^2) that has the published mean and std. So means,
  stds and bounds match almost exactly, and the loadings (calibrated once) set Pearson r;
- the base is flat, except for Work Hours per Week and Sleep Hours, where two separated bumps make
  the column bimodal (high z falls in the long-hours / short-sleep bump), and Mental Fatigue
  Score, where a low shoulder gives the published left skew;
- nulls are missing completely at random, at exactly the published counts (positions drawn without
  replacement); Gender, Company Type and WFH Setup Available (exact counts), Team Size and Date of
  Joining are independent of z; Years in Company is 17 for the 363 who joined by 6 January 2008
  (every day of 2008 has about 62 joiners), else 16.
"""

from __future__ import annotations

import argparse
import io
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from streamfn.data import DATASET_PATH as DEFAULT_PATH
from streamfn.models.seed import EMPLOYEE_ID, TARGET

ROWS = 22_750
YEAR = 2008
# Joiners up to this day of 2008 have 17 completed years; the facts give 363 of them.
SENIOR_DAYS = 6
SENIOR_ROWS = 363

COLUMNS: tuple[str, ...] = (
    EMPLOYEE_ID,
    "Date of Joining",
    "Gender",
    "Company Type",
    "WFH Setup Available",
    "Designation",
    "Resource Allocation",
    "Mental Fatigue Score",
    TARGET,
    "Years in Company",
    "Work Hours per Week",
    "Sleep Hours",
    "Work-Life Balance Score",
    "Manager Support Score",
    "Deadline Pressure Score",
    "Team Size",
    "Recognition Frequency",
)

# (column, first value, its count); the other value takes the remaining rows.
CATEGORIES: tuple[tuple[str, str, int, str], ...] = (
    ("Gender", "Female", 11_908, "Male"),
    ("Company Type", "Service", 14_833, "Product"),
    ("WFH Setup Available", "Yes", 12_290, "No"),
)


@dataclass(frozen=True, slots=True)
class Numeric:
    """One numeric column: grid, published moments, nulls, and how its score loads on z."""

    name: str
    low: float
    high: float
    mean: float
    std: float
    decimals: int = 0
    nulls: int = 0
    # Signed loading of the Gaussian score on z; calibrated so Pearson r with Burn Rate (after
    # the rank mapping onto a coarse grid, which attenuates it) lands on the published value.
    loading: float = 0.0
    # (weight, centre, sd) bumps of the base distribution; empty means flat.
    bumps: tuple[tuple[float, float, float], ...] = ()
    integer_valued_float: bool = False


# Bases of the non-flat columns: (weight, centre, sd) bumps.
FATIGUE_BASE = ((0.85, 6.1, 1.5), (0.15, 3.5, 1.8))  # low shoulder: left skew, Q1 4.6, Q3 7.1
HOURS_BASE = ((0.45, 40.0, 3.0), (0.55, 53.5, 3.5))  # two modes; high z -> long hours
SLEEP_BASE = ((0.56, 5.55, 0.38), (0.44, 6.85, 0.38))  # two modes; high z -> short sleep

# fmt: off
NUMERIC: tuple[Numeric, ...] = (
    Numeric(TARGET, 0, 1, 0.4520, 0.1982, decimals=2, nulls=1_124, loading=1.0),
    Numeric("Mental Fatigue Score", 0, 10, 5.7282, 1.9208, decimals=1, nulls=2_117,
            loading=0.956, bumps=FATIGUE_BASE),
    Numeric("Resource Allocation", 1, 10, 4.4814, 2.0472, nulls=1_381, loading=0.868,
            integer_valued_float=True),
    Numeric("Designation", 0, 5, 2.1787, 1.1351, loading=0.763),
    Numeric("Work Hours per Week", 35, 59, 47.3647, 7.6511, loading=0.756, bumps=HOURS_BASE),
    Numeric("Work-Life Balance Score", 1, 5, 2.5956, 1.4028, loading=-0.754),
    Numeric("Deadline Pressure Score", 1, 5, 3.4001, 1.4092, loading=0.760),
    Numeric("Recognition Frequency", 0, 5, 1.8195, 1.7135, loading=-0.747),
    Numeric("Sleep Hours", 3.4, 9.1, 6.1540, 0.8927, decimals=1, loading=-0.673,
            bumps=SLEEP_BASE),
    Numeric("Manager Support Score", 1, 5, 2.8747, 1.2811, loading=-0.635),
    Numeric("Team Size", 3, 19, 11.0580, 4.9077),
)
# fmt: on


def grid_of(column: Numeric) -> np.ndarray:
    """Every value the column can take, ascending."""
    scale = 10**column.decimals
    # Dividing integers (not multiplying by 0.1) gives the float nearest each decimal.
    return np.arange(round(column.low * scale), round(column.high * scale) + 1) / scale


def base_weights(column: Numeric, grid: np.ndarray) -> np.ndarray:
    """The unnormalised base distribution that the fit tilts: flat, or a mixture of bumps."""
    if not column.bumps:
        return np.ones_like(grid)
    weights = np.zeros_like(grid)
    for weight, centre, sd in column.bumps:
        weights += weight * np.exp(-0.5 * ((grid - centre) / sd) ** 2) / sd
    # A floor keeps every grid value possible, so the published bounds are reachable.
    return weights + 1e-4 * weights.max()


def fit_pmf(grid: np.ndarray, mean: float, std: float, base: np.ndarray) -> np.ndarray:
    """The distribution closest to `base` (exponential tilt) with the given mean and std."""
    # p ~ base * exp(t0*u + t1*(u^2 - 1)) with u standardised; minimising the convex log-partition
    # makes E[u] = 0 and E[u^2] = 1, i.e. the requested moments. Damped Newton converges fast.
    u = (grid - mean) / std
    feats = np.stack([u, u * u - 1.0])
    log_base = np.log(base / base.sum())

    def log_partition(theta: np.ndarray) -> float:
        return float(np.logaddexp.reduce(log_base + theta @ feats))

    theta = np.zeros(2)
    for _ in range(200):
        p = np.exp(log_base + theta @ feats - log_partition(theta))
        grad = feats @ p
        if np.abs(grad).max() < 1e-12:
            break
        centred = feats - grad[:, None]
        step = np.linalg.solve((centred * p) @ centred.T, grad)
        shrink = 1.0
        while log_partition(theta - shrink * step) > log_partition(theta) and shrink > 1e-6:
            shrink /= 2
        theta = theta - shrink * step
    return np.exp(log_base + theta @ feats - log_partition(theta))


def exact_counts(pmf: np.ndarray, total: int) -> np.ndarray:
    """Integer counts summing to `total` closest to pmf*total, with both bounds present."""
    raw = pmf * total
    counts = np.floor(raw).astype(np.int64)
    # Largest remainders get the leftover rows, so the counts are the best rounding.
    leftover = total - int(counts.sum())
    counts[np.argsort(raw - counts, kind="stable")[::-1][:leftover]] += 1
    for end in (0, len(counts) - 1):
        if counts[end] == 0:
            counts[end] = 1
            counts[int(np.argmax(counts))] -= 1
    return counts


def column_values(column: Numeric, score: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The column: its fitted distribution handed out by rank of `score`, with MCAR nulls."""
    grid = grid_of(column)
    pmf = fit_pmf(grid, column.mean, column.std, base_weights(column, grid))
    values = np.full(len(score), np.nan)
    present = np.ones(len(score), dtype=bool)
    present[rng.choice(len(score), size=column.nulls, replace=False)] = False
    rows = np.flatnonzero(present)
    ordered = np.repeat(grid, exact_counts(pmf, len(rows)))
    values[rows[np.argsort(score[rows], kind="stable")]] = ordered
    return values


def scores(column: Numeric, latent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A Gaussian score with correlation `column.loading` to the latent factor."""
    noise = rng.standard_normal(len(latent))
    return column.loading * latent + np.sqrt(1.0 - column.loading**2) * noise


def scaled(count: int, rows: int) -> int:
    """A published count rescaled to a frame of `rows` rows."""
    return round(count * rows / ROWS)


def employee_ids(rows: int, rng: np.random.Generator) -> np.ndarray:
    """Unique IDs in the real file's style: "fffe" + UTF-16-LE hex of a decimal number."""
    numbers = rng.choice(90_000, size=rows, replace=False) + 10_000
    return np.array(["fffe" + str(n).encode("utf-16-le").hex() for n in numbers], dtype=object)


def joining_days(rows: int, rng: np.random.Generator) -> np.ndarray:
    """Day of 2008 (0-365) for each row: every day used, the first days holding the seniors."""
    seniors = scaled(SENIOR_ROWS, rows)
    days = 366  # 2008 is a leap year
    # Exact per-day counts: seniors spread over the first days, the rest over the other days,
    # so "joined by 6 January" and "17 years in company" pick out the same rows.
    rest, later_days = rows - seniors, days - SENIOR_DAYS
    later = np.full(later_days, rest // later_days)
    later[rng.choice(later_days, size=rest % later_days, replace=False)] += 1
    counts = np.concatenate(
        [np.bincount(np.arange(seniors) % SENIOR_DAYS, minlength=SENIOR_DAYS), later]
    )
    return rng.permutation(np.repeat(np.arange(days), counts))


def two_valued(
    rows: int, first: str, count: int, other: str, rng: np.random.Generator
) -> np.ndarray:
    """A category column with exactly `count` rows of `first`, placed at random."""
    values = np.full(rows, other, dtype=object)
    values[rng.choice(rows, size=count, replace=False)] = first
    return values


def numeric_columns(rows: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """All numeric columns, driven by one latent burn-out factor; ints where there are no nulls."""
    latent = rng.standard_normal(rows)
    out: dict[str, np.ndarray] = {}
    for column in NUMERIC:
        spec = replace(column, nulls=scaled(column.nulls, rows))
        values = column_values(spec, scores(column, latent, rng), rng)
        plain_int = column.decimals == 0 and not column.integer_valued_float
        out[column.name] = values.astype(np.int64) if plain_int else values
    return out


def generate(seed: int = 42, rows: int = ROWS) -> pd.DataFrame:
    """The synthetic dataset: `rows` employees, the 17 columns in file order, seeded."""
    rng = np.random.default_rng(seed)
    days = joining_days(rows, rng)
    frame: dict[str, np.ndarray] = {
        EMPLOYEE_ID: employee_ids(rows, rng),
        "Date of Joining": (np.datetime64(f"{YEAR}-01-01") + days).astype(str).astype(object),
        "Years in Company": np.where(days < SENIOR_DAYS, 17, 16).astype(np.int64),
    }
    for name, first, count, other in CATEGORIES:
        frame[name] = two_valued(rows, first, scaled(count, rows), other, rng)
    frame.update(numeric_columns(rows, rng))
    return pd.DataFrame(frame)[list(COLUMNS)]


def decimals_of(name: str) -> int:
    """Decimals written for a float column (integer-valued floats are written like `3.0`)."""
    column = next(c for c in NUMERIC if c.name == name)
    return max(column.decimals, 1)


def formatted(series: pd.Series) -> pd.Series:
    """One column as the strings written to the file; nulls become empty fields."""
    if pd.api.types.is_float_dtype(series):
        spec = f"{{:.{decimals_of(str(series.name))}f}}"
        return series.map(lambda v: "" if pd.isna(v) else spec.format(v))
    return series.astype(str)


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """Deterministic CSV: header first, fixed decimals per column, LF line endings, UTF-8."""
    text = pd.DataFrame({name: formatted(frame[name]) for name in frame.columns})
    buffer = io.StringIO()
    text.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue().encode("utf-8")


def write_csv(path: Path | str = DEFAULT_PATH, seed: int = 42) -> Path:
    """Generate with `seed` and write the CSV to `path`; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(to_csv_bytes(generate(seed)))
    return path


def load(path: Path | str = DEFAULT_PATH) -> pd.DataFrame:
    """Read the dataset CSV as the rest of the project sees it."""
    return pd.read_csv(path)


def main(argv: list[str] | None = None) -> int:
    """Command line: regenerate the committed CSV (or another seed / path)."""
    parser = argparse.ArgumentParser(description="Regenerate the synthetic burn-out dataset CSV.")
    parser.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    parser.add_argument("--out", type=Path, default=DEFAULT_PATH, help="CSV path to write")
    args = parser.parse_args(argv)
    print(write_csv(args.out, seed=args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
