"""The SQS queue of `streamfn up --backend sqs`, on moto's server: shaped as template.yaml makes it
on AWS, its redrive policy moving a message to its dead-letter queue after MAX_DELIVERIES
receives."""

from __future__ import annotations

import json

from botocore.exceptions import BotoCoreError, ClientError

from streamfn.core.aws import aws_session
from streamfn.core.settings import Settings
from streamfn.stream.aws_local import LocalSetupError, check_queue, queue_url
from streamfn.stream.base import INVOKE_TIMEOUT_S

QUEUE = "streamfn-requests"
DEAD_LETTER_QUEUE = "streamfn-requests-dead"
# Six times the longest invocation plus the largest batching window, as AWS advises for a queue
# Lambda reads: a message a poller holds is not handed to another meanwhile.
VISIBILITY_TIMEOUT_S = 6 * INVOKE_TIMEOUT_S + 60


def variables(endpoint: str) -> dict[str, str]:
    """The variables naming the queue on moto's server at `endpoint`."""
    return {"STREAM_BACKEND": "sqs", "AWS_ENDPOINT_URL_KINESIS": endpoint,
            "AWS_ENDPOINT_URL_SQS": endpoint,
            "SQS_QUEUE_URL": queue_url(endpoint, QUEUE)}  # fmt: skip


def create(settings: Settings, visibility_timeout_s: int = VISIBILITY_TIMEOUT_S) -> None:
    """Create the queue and its dead-letter queue unless they are there."""
    sqs = aws_session(settings).client("sqs", endpoint_url=settings.AWS_ENDPOINT_URL_SQS)
    try:
        dead = sqs.create_queue(QueueName=DEAD_LETTER_QUEUE)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])
        redrive = {"deadLetterTargetArn": arn["Attributes"]["QueueArn"],
                   "maxReceiveCount": str(settings.MAX_DELIVERIES)}  # fmt: skip
        attributes = {"VisibilityTimeout": str(visibility_timeout_s),
                      "RedrivePolicy": json.dumps(redrive)}  # fmt: skip
        check_queue(sqs.create_queue(QueueName=QUEUE, Attributes=attributes),
                    settings.SQS_QUEUE_URL)  # fmt: skip
    except (BotoCoreError, ClientError) as error:
        raise LocalSetupError(f"sqs on moto's server: {error}") from None
