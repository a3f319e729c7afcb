"""What the Kinesis and SQS backends' local emulation shares: moto's server names every queue
under one account, and a failed call is one error."""

from __future__ import annotations

from typing import Any

from streamfn.stream.base import LocalSetupError

MOTO_ACCOUNT = "123456789012"


def queue_url(endpoint: str, name: str) -> str:
    """The URL moto's server gives a queue."""
    return f"{endpoint}/{MOTO_ACCOUNT}/{name}"


def check_queue(reply: dict[str, Any], expected: str | None) -> None:
    """The queue was created where the variables say it is."""
    if reply["QueueUrl"] != expected:
        raise LocalSetupError(f"the queue is at {reply['QueueUrl']}, not {expected}")
