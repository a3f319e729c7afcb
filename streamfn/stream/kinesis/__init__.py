"""The Kinesis backend (STREAM_BACKEND=kinesis): ingest puts one record a request
(streamfn.stream.kinesis.writer); Lambda's event source mapping reads the shards, or locally a
poller does as it would (streamfn.stream.kinesis.source, its leases in Redis); moto's server is
the local stream (streamfn.stream.kinesis.local)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from streamfn.core import connections
from streamfn.core.aws import aws_session
from streamfn.core.connections import AsyncClient
from streamfn.core.settings import Settings
from streamfn.stream.aws import writer_client
from streamfn.stream.base import SourceOptions
from streamfn.stream.kinesis import local
from streamfn.stream.kinesis.source import KinesisSource
from streamfn.stream.kinesis.writer import KinesisWriter


@lru_cache(maxsize=4)
def _client(settings: Settings) -> Any:
    # One per process, whatever event loop ingest's Redis client is bound to.
    return writer_client(settings, "kinesis", settings.AWS_ENDPOINT_URL_KINESIS)


class KinesisBackend:
    """A Kinesis stream, as a `streamfn.stream.base.Backend`."""

    def writer(self, settings: Settings, redis: AsyncClient) -> KinesisWriter:
        """Puts to KINESIS_STREAM; marks and counts in Redis."""
        return KinesisWriter(_client(settings), str(settings.KINESIS_STREAM), redis,
                             settings.keys, settings.RESULT_TTL_S,
                             settings.IDEMPOTENCY_TTL_S)  # fmt: skip

    def source(self, options: SourceOptions) -> KinesisSource:
        """The shards this poller leases, read as Lambda's mapping reads them."""
        s = options.settings
        session = aws_session(s)
        kinesis = session.client("kinesis", endpoint_url=s.AWS_ENDPOINT_URL_KINESIS)
        sqs = session.client("sqs", endpoint_url=s.AWS_ENDPOINT_URL_SQS)  # the on-failure queue
        redis = connections.worker_client(s.REDIS_URL, s.REDIS_CLUSTER)
        return KinesisSource(s, kinesis, redis, options.consumer, sqs, options.checkpoint)

    def local_variables(self, endpoint: str) -> dict[str, str]:
        """The stream (and its on-failure queue) on moto's server."""
        return local.variables(endpoint)

    def create_local(self, settings: Settings) -> None:
        """Create them there unless they are."""
        local.create(settings)


BACKEND = KinesisBackend()
