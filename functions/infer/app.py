"""Infer function: an SQS-shaped batch event in, CSV rows in S3, `batchItemFailures` out."""

from typing import Any

from streamfn import batch, logs
from streamfn.config import get_settings

logs.configure("streamfn-infer")
# Module scope: a warm Lambda container (or the poller's process) keeps models loaded. Loading
# them here, in Lambda's init phase, keeps the first invocation as fast as the others.
context = batch.build_context(get_settings())
batch.warm(context)


def handler(event: dict[str, Any], _context: object) -> batch.BatchResponse:
    """Process one batch; raising tells the caller to retry the whole batch later."""
    return batch.handle(event, context)
