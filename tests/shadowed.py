"""Records for the challenger's tests: drawn from the dataset's profile, reproducible."""

from __future__ import annotations

from typing import Any

from streamfn.data.synth import RecordSampler, load_profile
from streamfn.models.seed import EMPLOYEE_ID


def sampled_records(count: int, seed: int) -> list[dict[str, Any]]:
    """`count` canonical records with Employee IDs of their own."""
    sampler = RecordSampler(load_profile(), seed)
    return [{**sampler.record(), EMPLOYEE_ID: f"shadow-{seed}-{i}"} for i in range(count)]


def labelled_records(count: int, seed: int) -> list[tuple[dict[str, Any], float | None]]:
    """`count` canonical records with Employee IDs of their own, each with its burn rate (the
    label the dataset's own relation gives; None where the dataset would have none)."""
    sampler = RecordSampler(load_profile(), seed)
    found = []
    for i in range(count):
        record, rate = sampler.labelled()
        found.append(({**record, EMPLOYEE_ID: f"labelled-{seed}-{i}"}, rate))
    return found
