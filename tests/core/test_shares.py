"""Hashed shares: which messages SHADOW_SHARE, EXPLAIN_SHARE and the canary take."""

from __future__ import annotations

import pytest

from streamfn.core.shares import in_share


@pytest.mark.parametrize("start", [1796000010000, 1796000040060, 1733000000000])
def test_consecutive_stream_ids_fall_in_a_share_close_to_it(start: int) -> None:
    # A second of traffic at 60 messages/s: ids a few milliseconds apart.
    for first in range(start, start + 600, 60):
        ids = [f"{first + i}-0" for i in range(60)]
        for share in (0.25, 0.5):
            taken = sum(in_share(i, share, "canary:") for i in ids) / len(ids)
            assert abs(taken - share) < 0.2, (first, share, taken)
    many = [f"{start + i}-{i % 3}" for i in range(20_000)]
    assert abs(sum(in_share(i, 0.05) for i in many) / len(many) - 0.05) < 0.005


def test_a_wider_share_keeps_the_messages_a_narrower_one_took_and_purposes_differ() -> None:
    ids = [f"{1796000010000 + i}-0" for i in range(2000)]
    narrow = {i for i in ids if in_share(i, 0.05, "canary:")}
    wide = {i for i in ids if in_share(i, 0.25, "canary:")}
    assert narrow < wide
    assert narrow != {i for i in ids if in_share(i, 0.05, "explain:")}
    assert all(in_share(i, 1.0) for i in ids)
    assert not any(in_share(i, 0.0) for i in ids)
