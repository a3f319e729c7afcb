"""The Kinesis stream of `streamfn up --backend kinesis`, on moto's server: shaped as
template.yaml makes it on AWS, two shards with an on-failure queue for the batches its mapping
gives up."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from streamfn.core.aws import aws_session
from streamfn.core.settings import Settings
from streamfn.stream.aws_local import LocalSetupError, check_queue, queue_url

STREAM = "streamfn-requests"
SHARDS = 2
ON_FAILURE_QUEUE = "streamfn-on-failure"


def variables(endpoint: str) -> dict[str, str]:
    """The variables naming the stream on moto's server at `endpoint`."""
    return {"STREAM_BACKEND": "kinesis", "AWS_ENDPOINT_URL_KINESIS": endpoint,
            "AWS_ENDPOINT_URL_SQS": endpoint, "KINESIS_STREAM": STREAM,
            "ON_FAILURE_QUEUE_URL": queue_url(endpoint, ON_FAILURE_QUEUE)}  # fmt: skip


def create(settings: Settings) -> None:
    """Create the stream and its on-failure queue unless they are there."""
    session = aws_session(settings)
    try:
        kinesis = session.client("kinesis", endpoint_url=settings.AWS_ENDPOINT_URL_KINESIS)
        if STREAM not in kinesis.list_streams()["StreamNames"]:
            kinesis.create_stream(StreamName=STREAM, ShardCount=SHARDS)
        sqs = session.client("sqs", endpoint_url=settings.AWS_ENDPOINT_URL_SQS)
        check_queue(sqs.create_queue(QueueName=ON_FAILURE_QUEUE), settings.ON_FAILURE_QUEUE_URL)
    except (BotoCoreError, ClientError) as error:
        raise LocalSetupError(f"kinesis on moto's server: {error}") from None
