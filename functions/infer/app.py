"""Infer function: a batch event (the poller's, or Lambda's own SQS or Kinesis) in, CSV rows in
S3, `batchItemFailures` out."""

from typing import Any

from streamfn.core import logs
from streamfn.core.environment import get_settings
from streamfn.infer import handler as infer
from streamfn.stream.events import BatchResponse

logs.configure("streamfn-infer")
# Module scope: a warm Lambda container (or the poller's process) keeps models loaded. Loading
# them here, in Lambda's init phase, keeps the first invocation as fast as the others.
context = infer.build_context(get_settings())
infer.warm(context)


def handler(event: dict[str, Any], _context: object) -> BatchResponse:
    """Process one batch; raising tells the caller to retry the whole batch later."""
    return infer.handle(event, context)
