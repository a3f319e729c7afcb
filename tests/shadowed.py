"""Records for the challenger's tests: drawn from the dataset's profile, reproducible."""

from __future__ import annotations

from typing import Any

from streamfn.data.synth import RecordSampler, load_profile
from streamfn.models.seed import EMPLOYEE_ID


def sampled_records(count: int, seed: int) -> list[dict[str, Any]]:
    """`count` canonical records with Employee IDs of their own."""
    sampler = RecordSampler(load_profile(), seed)
    return [{**sampler.record(), EMPLOYEE_ID: f"shadow-{seed}-{i}"} for i in range(count)]
