"""Kinesis and SQS on moto's server for the native-source tests: the stream, the queues, the
settings that name them, and a local event source mapping over the in-process infer handler."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3

from streamfn.core.settings import Settings
from streamfn.poller import invoke
from streamfn.poller.loop import Poller
from streamfn.stream.events import BatchResponse
from streamfn.stream.kinesis.source import KinesisSource
from streamfn.stream.sqs.source import SqsSource
from tests.conftest import S3_TEST_ENV

STREAM = "streamfn-test"
SHARDS = 2
QUEUE = "streamfn-requests"
DEAD = "streamfn-requests-dead"
ON_FAILURE = "streamfn-on-failure"
MAX_RECEIVES = 3  # the queue's redrive: a message failing this many receives goes to DEAD


@dataclass
class Native:
    """moto's server with a 2-shard stream, a queue with its dead-letter queue, and the
    Kinesis mapping's on-failure queue."""

    endpoint: str
    kinesis: Any
    sqs: Any
    s3: Any
    queue_url: str
    dead_url: str
    on_failure_url: str

    def env(self) -> dict[str, str]:
        """The variables naming these, for settings or a child process."""
        return {**S3_TEST_ENV, "AWS_ENDPOINT_URL_S3": self.endpoint,
                "AWS_ENDPOINT_URL_KINESIS": self.endpoint, "AWS_ENDPOINT_URL_SQS": self.endpoint,
                "KINESIS_STREAM": STREAM, "SQS_QUEUE_URL": self.queue_url,
                "ON_FAILURE_QUEUE_URL": self.on_failure_url}  # fmt: skip

    def drain(self, url: str) -> list[dict[str, Any]]:
        """Every message waiting in a queue, deleted, as JSON bodies."""
        bodies: list[dict[str, Any]] = []
        while messages := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
            "Messages"
        ):
            for m in messages:
                bodies.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return bodies


def client(service: str, endpoint: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip


def native_on(endpoint: str, visibility_s: int = 1) -> Native:
    """Create the stream, the queues and the bucket on moto's server at `endpoint`."""
    kinesis, sqs, s3 = (client(s, endpoint) for s in ("kinesis", "sqs", "s3"))
    s3.create_bucket(Bucket="predictions")
    kinesis.create_stream(StreamName=STREAM, ShardCount=SHARDS)
    dead_url = sqs.create_queue(QueueName=DEAD)["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead_url, AttributeNames=["QueueArn"])
    redrive = {"deadLetterTargetArn": dead_arn["Attributes"]["QueueArn"],
               "maxReceiveCount": str(MAX_RECEIVES)}  # fmt: skip
    attributes = {"VisibilityTimeout": str(visibility_s), "RedrivePolicy": json.dumps(redrive)}
    queue_url = sqs.create_queue(QueueName=QUEUE, Attributes=attributes)["QueueUrl"]
    on_failure_url = sqs.create_queue(QueueName=ON_FAILURE)["QueueUrl"]
    return Native(endpoint, kinesis, sqs, s3, queue_url, dead_url, on_failure_url)


Invoker = Callable[[dict[str, Any]], BatchResponse]


def kinesis_mapping(
    settings: Settings, native: Native, invoker: Invoker | None = None, consumer: str = "local"
) -> Poller:
    """A poller of the Kinesis stream as Lambda's mapping reads it, over the in-process handler
    (or `invoker`)."""
    from streamfn.core import connections

    redis = connections.worker_client(settings.REDIS_URL, settings.REDIS_CLUSTER)
    source = KinesisSource(settings, native.kinesis, redis, consumer, native.sqs)
    return Poller(source, invoker or invoke.in_process(settings))


def sqs_mapping(settings: Settings, native: Native, invoker: Invoker | None = None) -> Poller:
    """A poller of the SQS queue as Lambda's mapping reads it, over the in-process handler (or
    `invoker`)."""
    source = SqsSource(settings, native.sqs, "local")
    return Poller(source, invoker or invoke.in_process(settings))
