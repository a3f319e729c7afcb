"""A poller that dies at each step of the exactly-once protocol: its batch is written once.

The doomed poller runs with CRASH_AT, so it exits at once (code 137, as SIGKILLed) at that step of
the first batch it takes: after recording the intent, after the PUT, after the done records, or
before the XACK. Where a SIGKILL lands is left to chance; here it lands on each step in turn.
"""

from __future__ import annotations

import signal

import pytest

from streamfn.core import crash
from tests.faults.pipeline import Pipeline

pytestmark = [pytest.mark.faults, pytest.mark.slow]


@pytest.mark.parametrize("step", crash.STEPS)
def test_a_poller_dying_at_a_step_of_the_protocol(pipeline: Pipeline, step: str) -> None:
    pipeline.start("steady")
    pipeline.start_pollers("doomed", CRASH_AT=step)
    pipeline.wait_up("doomed")
    # The steady poller sits still until the doomed one has died, so the doomed one takes a batch.
    pipeline.children["steady"].signal(signal.SIGSTOP)
    run = pipeline.produce(300, seed=300 + crash.STEPS.index(step))
    doomed = pipeline.children["doomed"]
    pipeline.wait(lambda: not doomed.running, 60, f"doomed poller exits at {step}")
    pipeline.children["steady"].signal(signal.SIGCONT)
    assert doomed.popen.returncode == crash.EXIT_CODE, pipeline.logs()
    assert pipeline.log_lines('"crash point reached', "doomed"), pipeline.logs()
    pipeline.finish(run)
    pipeline.drain()
    pipeline.check(pipeline.tally(f"crash_{step}"))
