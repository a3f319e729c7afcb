"""A poller's hold on the work it has in hand, kept up by a beat on a thread while it works."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from redis.exceptions import RedisError

log = logging.getLogger(__name__)


@contextmanager
def beating(every_s: float, beat: Callable[[], object], holding: str) -> Iterator[None]:
    """Call `beat` every `every_s` seconds until the block ends. A Redis error is logged, not
    raised: the batch's own calls will meet the outage."""
    done = threading.Event()

    def run() -> None:
        while not done.wait(every_s):
            try:
                beat()
            except RedisError as error:
                log.warning("could not hold", extra={"holding": holding, "error": str(error)})

    heart = threading.Thread(target=run, name=f"hold-{holding}", daemon=True)
    heart.start()
    try:
        yield
    finally:
        done.set()
        heart.join()
