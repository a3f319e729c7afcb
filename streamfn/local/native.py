"""The Kinesis stream and SQS queues of `streamfn up --backend kinesis|sqs`, on moto's server.

They are shaped as template.yaml makes them on AWS: a stream of two shards with an on-failure
queue for the batches its mapping gives up, or a queue whose redrive policy moves a message to its
dead-letter queue after MAX_DELIVERIES receives.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from streamfn.core.aws import aws_session
from streamfn.core.settings import Settings
from streamfn.poller.invoke import INVOKE_TIMEOUT_S

STREAM = "streamfn-requests"
SHARDS = 2
QUEUE = "streamfn-requests"
DEAD_LETTER_QUEUE = "streamfn-requests-dead"
ON_FAILURE_QUEUE = "streamfn-on-failure"
# moto's server names every queue under this account.
MOTO_ACCOUNT = "123456789012"
# Six times the longest invocation plus the largest batching window, as AWS advises for a queue
# Lambda reads: a message a poller holds is not handed to another meanwhile.
VISIBILITY_TIMEOUT_S = 6 * INVOKE_TIMEOUT_S + 60


class NativeSetupError(RuntimeError):
    """The stream or a queue could not be created."""


def queue_url(endpoint: str, name: str) -> str:
    """The URL moto's server gives a queue."""
    return f"{endpoint}/{MOTO_ACCOUNT}/{name}"


def variables(backend: str, endpoint: str) -> dict[str, str]:
    """The variables naming the stream or queue on moto's server at `endpoint`."""
    env = {"STREAM_BACKEND": backend, "AWS_ENDPOINT_URL_KINESIS": endpoint,
           "AWS_ENDPOINT_URL_SQS": endpoint}  # fmt: skip
    if backend == "kinesis":
        return env | {"KINESIS_STREAM": STREAM,
                      "ON_FAILURE_QUEUE_URL": queue_url(endpoint, ON_FAILURE_QUEUE)}  # fmt: skip
    return env | {"SQS_QUEUE_URL": queue_url(endpoint, QUEUE)}


def create(settings: Settings, visibility_timeout_s: int = VISIBILITY_TIMEOUT_S) -> None:
    """Create the stream (and its on-failure queue) or the queue (and its dead-letter queue),
    if they are not there yet."""
    session = aws_session(settings)
    sqs = session.client("sqs", endpoint_url=settings.AWS_ENDPOINT_URL_SQS)
    try:
        if settings.STREAM_BACKEND == "kinesis":
            kinesis = session.client("kinesis", endpoint_url=settings.AWS_ENDPOINT_URL_KINESIS)
            if STREAM not in kinesis.list_streams()["StreamNames"]:
                kinesis.create_stream(StreamName=STREAM, ShardCount=SHARDS)
            _check(sqs.create_queue(QueueName=ON_FAILURE_QUEUE), settings.ON_FAILURE_QUEUE_URL)
            return
        dead = sqs.create_queue(QueueName=DEAD_LETTER_QUEUE)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])
        redrive = {"deadLetterTargetArn": arn["Attributes"]["QueueArn"],
                   "maxReceiveCount": str(settings.MAX_DELIVERIES)}  # fmt: skip
        attributes = {"VisibilityTimeout": str(visibility_timeout_s),
                      "RedrivePolicy": json.dumps(redrive)}  # fmt: skip
        _check(sqs.create_queue(QueueName=QUEUE, Attributes=attributes), settings.SQS_QUEUE_URL)
    except (BotoCoreError, ClientError) as error:
        raise NativeSetupError(f"{settings.STREAM_BACKEND} on moto's server: {error}") from None


def _check(reply: dict[str, Any], expected: str | None) -> None:
    if reply["QueueUrl"] != expected:
        raise NativeSetupError(f"the queue is at {reply['QueueUrl']}, not {expected}")
