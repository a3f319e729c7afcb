"""The producer's synthetic records: they follow the dataset, pass validation, copy no row."""

from __future__ import annotations

import pandas as pd
import pytest

from streamfn.data import dataset, synth
from streamfn.ingest.validation import Validator
from streamfn.models.schemas import seed_schema
from streamfn.models.seed import BY_NAME, CATEGORICAL, EMPLOYEE_ID, NUMERIC

validate_records = Validator(seed_schema()).validate_records

SAMPLE = 20_000


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return dataset.load()


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    sampler = synth.RecordSampler(synth.load_profile(), seed=7)
    return pd.DataFrame(sampler.records(SAMPLE))


def test_committed_profile_is_the_fit_of_the_committed_dataset(data: pd.DataFrame) -> None:
    assert synth.PROFILE_PATH.read_text() == synth.fit(data).to_json()


def test_same_seed_same_records_other_seed_other_records() -> None:
    profile = synth.load_profile()
    first = synth.RecordSampler(profile, seed=3).records(50)
    assert synth.RecordSampler(profile, seed=3).records(50) == first
    assert synth.RecordSampler(profile, seed=4).records(50) != first


def test_every_record_passes_the_ingest_validation(sample: pd.DataFrame) -> None:
    records = [{k: v for k, v in r.items() if not pd.isna(v)} for r in sample.to_dict("records")]
    assert len(validate_records(records, max_records=SAMPLE)) == SAMPLE


def test_values_are_the_dataset_values(sample: pd.DataFrame, data: pd.DataFrame) -> None:
    for name in NUMERIC:
        produced = set(sample[name].dropna().unique())
        assert produced <= set(data[name].dropna().unique()), name
        feature = BY_NAME[name]
        assert sample[name].min() >= feature.low
        assert sample[name].max() <= feature.high
    for name in CATEGORICAL:
        assert set(sample[name]) == set(data[name])


@pytest.mark.parametrize("name", NUMERIC)
def test_marginals_and_nulls_follow_the_dataset(
    sample: pd.DataFrame, data: pd.DataFrame, name: str
) -> None:
    produced, real = sample[name], data[name]
    # The standard error of a 20,000-record mean is std / 141: allow about four of them.
    assert produced.mean() == pytest.approx(real.mean(), abs=4 * real.std() / 141)
    assert produced.std() == pytest.approx(real.std(), rel=0.03)
    assert produced.isna().mean() == pytest.approx(real.isna().mean(), abs=0.01)


def test_correlations_follow_the_dataset(sample: pd.DataFrame, data: pd.DataFrame) -> None:
    produced = sample[list(NUMERIC)].corr()
    real = data[list(NUMERIC)].corr()
    assert (produced - real).abs().to_numpy().max() < 0.08
    # The structure, not only the size: fatigue goes with hours, against sleep.
    assert produced.loc["Mental Fatigue Score", "Work Hours per Week"] > 0.5
    assert produced.loc["Mental Fatigue Score", "Sleep Hours"] < -0.4


def test_category_shares_follow_the_dataset(sample: pd.DataFrame, data: pd.DataFrame) -> None:
    for name in CATEGORICAL:
        produced = sample[name].value_counts(normalize=True)
        real = data[name].value_counts(normalize=True)
        for value, share in real.items():
            assert produced[value] == pytest.approx(share, abs=0.015), (name, value)


def test_employee_ids_never_repeat_within_a_sampler() -> None:
    # 60,000 draws from 9 million values would repeat about 200 times if drawn independently.
    sampler = synth.RecordSampler(synth.load_profile(), seed=202)
    ids = [sampler.employee_id() for _ in range(60_000)]
    assert len(set(ids)) == len(ids)


def test_no_row_of_the_dataset_is_copied(sample: pd.DataFrame, data: pd.DataFrame) -> None:
    assert not set(sample[EMPLOYEE_ID]) & set(data[EMPLOYEE_ID])
    columns = list(CATEGORICAL + NUMERIC)
    complete = sample.dropna(subset=columns)
    copies = complete.merge(data.dropna(subset=columns)[columns].drop_duplicates(), on=columns)
    # Each feature is drawn on its own: a whole row of 13 can match only by rare chance.
    assert len(copies) < 0.005 * len(complete)


def test_a_profile_of_other_features_is_refused() -> None:
    text = synth.PROFILE_PATH.read_text().replace('"Team Size"', '"Team"')
    with pytest.raises(ValueError, match="feature table"):
        synth.Profile.from_json(text)
