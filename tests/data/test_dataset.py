"""The committed synthetic dataset checked against the published facts about the real file.

Every expected number below is copied from the facts page (dataset-facts.md), not computed from
the generator, so a wrong generator or a stale CSV fails here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from streamfn.data.dataset import COLUMNS, DEFAULT_PATH, generate, to_csv_bytes
from streamfn.models.seed import EMPLOYEE_ID, TARGET

CSV_PATH = DEFAULT_PATH
ROWS = 22_750

# Columns, in file order: (name, type, nulls). Types: "str", "int", "float".
SCHEMA: tuple[tuple[str, str, int], ...] = (
    ("Employee ID", "str", 0),
    ("Date of Joining", "str", 0),
    ("Gender", "str", 0),
    ("Company Type", "str", 0),
    ("WFH Setup Available", "str", 0),
    ("Designation", "int", 0),
    ("Resource Allocation", "float", 1_381),
    ("Mental Fatigue Score", "float", 2_117),
    ("Burn Rate", "float", 1_124),
    ("Years in Company", "int", 0),
    ("Work Hours per Week", "int", 0),
    ("Sleep Hours", "float", 0),
    ("Work-Life Balance Score", "int", 0),
    ("Manager Support Score", "int", 0),
    ("Deadline Pressure Score", "int", 0),
    ("Team Size", "int", 0),
    ("Recognition Frequency", "int", 0),
)

# (column, value, count) of the three categorical columns.
CATEGORY_COUNTS: tuple[tuple[str, str, int], ...] = (
    ("Gender", "Female", 11_908),
    ("Gender", "Male", 10_842),
    ("Company Type", "Service", 14_833),
    ("Company Type", "Product", 7_917),
    ("WFH Setup Available", "Yes", 12_290),
    ("WFH Setup Available", "No", 10_460),
)

# Summary statistics of the non-null values: column -> (mean, std, min, max).
SUMMARY: dict[str, tuple[float, float, float, float]] = {
    "Designation": (2.1787, 1.1351, 0, 5),
    "Resource Allocation": (4.4814, 2.0472, 1, 10),
    "Mental Fatigue Score": (5.7282, 1.9208, 0, 10),
    "Burn Rate": (0.4520, 0.1982, 0, 1),
    "Work Hours per Week": (47.3647, 7.6511, 35, 59),
    "Sleep Hours": (6.1540, 0.8927, 3.4, 9.1),
    "Work-Life Balance Score": (2.5956, 1.4028, 1, 5),
    "Manager Support Score": (2.8747, 1.2811, 1, 5),
    "Deadline Pressure Score": (3.4001, 1.4092, 1, 5),
    "Team Size": (11.0580, 4.9077, 3, 19),
    "Recognition Frequency": (1.8195, 1.7135, 0, 5),
}

# |Pearson r| with Burn Rate and its direction.
CORRELATIONS: dict[str, tuple[float, int]] = {
    "Mental Fatigue Score": (0.945, +1),
    "Resource Allocation": (0.856, +1),
    "Designation": (0.738, +1),
    "Work Hours per Week": (0.720, +1),
    "Work-Life Balance Score": (0.708, -1),
    "Deadline Pressure Score": (0.708, +1),
    "Recognition Frequency": (0.696, -1),
    "Sleep Hours": (0.655, -1),
    "Manager Support Score": (0.609, -1),
}
# Described as uncorrelated with the target: |r| <= 0.5. Categories encoded 1 for this value.
UNCORRELATED: dict[str, str | None] = {
    "Gender": "Female",
    "Company Type": "Service",
    "WFH Setup Available": "Yes",
    "Years in Company": None,
    "Team Size": None,
}
YEARS_IN_COMPANY: dict[int, int] = {16: 22_387, 17: 363}
# Bimodal columns and the resolution of their values (integers, 1 decimal).
BIMODAL: dict[str, float] = {"Work Hours per Week": 1.0, "Sleep Hours": 0.1}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """The committed CSV, read as any consumer would."""
    return pd.read_csv(CSV_PATH)


def test_row_count(frame: pd.DataFrame) -> None:
    assert len(frame) == ROWS


def test_columns_in_order(frame: pd.DataFrame) -> None:
    expected = [name for name, _, _ in SCHEMA]
    assert list(frame.columns) == expected
    assert list(COLUMNS) == expected


@pytest.mark.parametrize(("column", "kind"), [(name, kind) for name, kind, _ in SCHEMA])
def test_dtype(frame: pd.DataFrame, column: str, kind: str) -> None:
    checks = {
        "int": pd.api.types.is_integer_dtype,
        "float": pd.api.types.is_float_dtype,
        "str": pd.api.types.is_string_dtype,
    }
    assert checks[kind](frame[column]), f"{column} is {frame[column].dtype}, expected {kind}"


def test_employee_id_unique(frame: pd.DataFrame) -> None:
    assert frame[EMPLOYEE_ID].is_unique


def test_date_of_joining(frame: pd.DataFrame) -> None:
    dates = pd.to_datetime(frame["Date of Joining"], format="%Y-%m-%d")  # raises if malformed
    assert (dates.dt.year == 2008).all()
    per_month = dates.dt.month.value_counts().sort_index()
    assert list(per_month.index) == list(range(1, 13))
    # Roughly even: each month within 10% of its share of the 366 days of 2008.
    expected = ROWS * pd.Series(pd.period_range("2008-01", "2008-12", freq="M").days_in_month) / 366
    assert np.allclose(per_month.to_numpy(), expected.to_numpy(), rtol=0.10)


@pytest.mark.parametrize(("column", "nulls"), [(name, nulls) for name, _, nulls in SCHEMA])
def test_null_count(frame: pd.DataFrame, column: str, nulls: int) -> None:
    actual = int(frame[column].isna().sum())
    if nulls == 0:
        assert actual == 0
    else:
        assert abs(actual - nulls) <= 0.02 * nulls, f"{actual} nulls, expected {nulls}"


@pytest.mark.parametrize(("column", "value", "count"), CATEGORY_COUNTS)
def test_category_share(frame: pd.DataFrame, column: str, value: str, count: int) -> None:
    share = float((frame[column] == value).mean())
    assert share == pytest.approx(count / ROWS, abs=0.01)


@pytest.mark.parametrize("column", SUMMARY)
def test_mean(frame: pd.DataFrame, column: str) -> None:
    assert frame[column].mean() == pytest.approx(SUMMARY[column][0], rel=0.03)


@pytest.mark.parametrize("column", SUMMARY)
def test_std(frame: pd.DataFrame, column: str) -> None:
    assert frame[column].std() == pytest.approx(SUMMARY[column][1], rel=0.05)


@pytest.mark.parametrize("column", SUMMARY)
def test_bounds(frame: pd.DataFrame, column: str) -> None:
    _, _, low, high = SUMMARY[column]
    assert frame[column].min() == pytest.approx(low, abs=1e-9)
    assert frame[column].max() == pytest.approx(high, abs=1e-9)


@pytest.mark.parametrize("column", CORRELATIONS)
def test_correlation_with_target(frame: pd.DataFrame, column: str) -> None:
    magnitude, direction = CORRELATIONS[column]
    r = frame[column].corr(frame[TARGET])  # pairwise: rows where both are present
    assert np.sign(r) == direction, f"r = {r:.3f}"
    assert abs(r) == pytest.approx(magnitude, abs=0.05)


@pytest.mark.parametrize("column", UNCORRELATED)
def test_uncorrelated_with_target(frame: pd.DataFrame, column: str) -> None:
    value = UNCORRELATED[column]
    encoded = frame[column] if value is None else (frame[column] == value).astype(int)
    assert abs(encoded.corr(frame[TARGET])) <= 0.5


def test_years_in_company_values(frame: pd.DataFrame) -> None:
    assert set(frame["Years in Company"].unique()) == set(YEARS_IN_COMPANY)


@pytest.mark.parametrize(("years", "count"), YEARS_IN_COMPANY.items())
def test_years_in_company_count(frame: pd.DataFrame, years: int, count: int) -> None:
    actual = int((frame["Years in Company"] == years).sum())
    assert abs(actual - count) <= 0.02 * count, f"{actual} rows, expected {count}"


def smoothed_histogram(values: np.ndarray, step: float) -> np.ndarray:
    """Counts per value on the column's grid, smoothed by a Gaussian of a quarter std."""
    edges = np.arange(values.min() - step / 2, values.max() + step, step)
    counts, _ = np.histogram(values, bins=edges)
    width = 0.25 * values.std() / step  # in bins: wide enough to flatten rounding noise
    offsets = np.arange(-int(4 * width) - 1, int(4 * width) + 2)
    kernel = np.exp(-0.5 * (offsets / width) ** 2)
    return np.convolve(counts, kernel / kernel.sum(), mode="same")


@pytest.mark.parametrize("column", BIMODAL)
def test_bimodal(frame: pd.DataFrame, column: str) -> None:
    values = frame[column].dropna().to_numpy(dtype=float)
    step = BIMODAL[column]
    curve = smoothed_histogram(values, step)
    inner = np.arange(1, len(curve) - 1)
    peaks = inner[(curve[inner] > curve[inner - 1]) & (curve[inner] >= curve[inner + 1])]
    assert len(peaks) >= 2, f"{column}: one mode only"
    left, right = sorted(sorted(peaks, key=lambda i: curve[i])[-2:])
    lower_peak = min(curve[left], curve[right])
    # Two real modes: apart by at least one std, both sizeable, and a clear dip between them.
    assert (right - left) * step >= values.std()
    assert lower_peak >= 0.25 * curve.max()
    assert curve[left : right + 1].min() <= 0.8 * lower_peak


def test_regenerates_byte_for_byte() -> None:
    assert to_csv_bytes(generate()) == CSV_PATH.read_bytes(), "run: python -m streamfn.dataset"
