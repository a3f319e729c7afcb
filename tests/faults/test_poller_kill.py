"""Fault 1: a poller SIGKILLed mid-batch; its entries are reclaimed, none lost or written twice,
with and without a challenger in shadow (whose rows must be exactly once too), and with a canary
(the challenger serves half the messages, the champion scores them in shadow); the windows' sums
of calibrated probabilities and of contributions are the rows' exactly too."""

from __future__ import annotations

import pytest

from tests.challengers import CHALLENGED
from tests.faults.estimates import EXPLAINED_ENV
from tests.faults.pipeline import Pipeline

pytestmark = [pytest.mark.faults, pytest.mark.slow]


# case -> (CANARY_SHARE, or None without a challenger; the producer's seed; the tally's name)
CASES = {
    "no challenger": (None, 101, "poller_sigkill"),
    "challenger in shadow": ("0", 801, "challenger_poller_sigkill"),
    "canary": ("0.5", 851, "canary_poller_sigkill"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_poller_sigkill_mid_batch_then_replaced(
    pipeline: Pipeline, case: str, request: pytest.FixtureRequest
) -> None:
    """Kill a poller while it holds pending entries, start a replacement: lost 0, duplicated 0."""
    # The replacement loads its models before its first read, and a poller holds its batch's
    # entries while it works on them: the harness's short CLAIM_IDLE_MS reclaims only the dead.
    # `challenged` sets the alias before the pollers start: they load it beside the champions.
    canary_share, seed, fault = CASES[case]
    shadow = canary_share is not None
    challenger = request.getfixturevalue("challenged") if shadow else None
    # Every input a reason and the probabilities in the rows: the windows' estimate and
    # attribution sums are then checked against the rows too (tests/faults/estimates.py).
    pipeline.start("a", "b", **EXPLAINED_ENV, CANARY_SHARE=canary_share or "0")
    if challenger is not None:
        pipeline.wait_challenger(CHALLENGED, challenger, "a", "b")
    run = pipeline.produce(3000, seed=seed)
    # Mid-batch: "a" has read entries and not acknowledged them yet.
    held = pipeline.wait(lambda: pipeline.pending("a"), 60, "poller a holds pending entries")
    pipeline.kill_poller("a")
    pipeline.start_pollers("a2")
    pipeline.finish(run)
    pipeline.drain()
    tally = pipeline.tally(fault)
    reclaimed = pipeline.poller_total("streamfn_poller_reclaimed_total", "b", "a2")
    assert reclaimed >= 1, f"nothing reclaimed; a held {held}\n{pipeline.logs()}"
    pipeline.check(tally)  # with a challenger, one shadow row per row of its model too
    if case == "canary":  # the challenger served its share: its rows are among the served
        versions = {r["model_version"] for r in pipeline.rows() if r["model"] == CHALLENGED}
        assert challenger in versions, versions
