"""The SQS backend (STREAM_BACKEND=sqs): ingest sends one message a request
(streamfn.stream.sqs.writer); Lambda's event source mapping reads the queue, or locally a poller
does as it would (streamfn.stream.sqs.source); moto's server is the local queue
(streamfn.stream.sqs.local)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from streamfn.core.aws import aws_session
from streamfn.core.connections import AsyncClient
from streamfn.core.settings import Settings
from streamfn.stream.aws import writer_client
from streamfn.stream.base import SourceOptions
from streamfn.stream.sqs import local
from streamfn.stream.sqs.source import SqsSource
from streamfn.stream.sqs.writer import SqsWriter


@lru_cache(maxsize=4)
def _client(settings: Settings) -> Any:
    # One per process, whatever event loop ingest's Redis client is bound to.
    return writer_client(settings, "sqs", settings.AWS_ENDPOINT_URL_SQS)


class SqsBackend:
    """An SQS queue, as a `streamfn.stream.base.Backend`."""

    def writer(self, settings: Settings, redis: AsyncClient) -> SqsWriter:
        """Sends to SQS_QUEUE_URL; marks and counts in Redis."""
        return SqsWriter(_client(settings), str(settings.SQS_QUEUE_URL), redis, settings.keys,
                         settings.RESULT_TTL_S, settings.IDEMPOTENCY_TTL_S)  # fmt: skip

    def source(self, options: SourceOptions) -> SqsSource:
        """The queue, read as Lambda's mapping reads it."""
        s = options.settings
        sqs = aws_session(s).client("sqs", endpoint_url=s.AWS_ENDPOINT_URL_SQS)
        return SqsSource(s, sqs, options.consumer, options.checkpoint)

    def local_variables(self, endpoint: str) -> dict[str, str]:
        """The queue (and its dead-letter queue) on moto's server."""
        return local.variables(endpoint)

    def create_local(self, settings: Settings) -> None:
        """Create them there unless they are."""
        local.create(settings)


BACKEND = SqsBackend()
