"""The stream's seam: what ingest appends a request through, and what a poller reads batches from.

A backend (a folder of this package, named in streamfn.stream.backends) gives both sides:
- a `Writer`: ingest's `append` of one entry per request, refused with a `RefusedError` (a 503)
  when the stream cannot take it now, or an `EntryTooLargeError` (a 413);
- a `Source`: the batches a poller hands the infer function, and what happens to each once the
  function has answered (acknowledged, deleted, checkpointed) or failed whole.

What every source does the same way is written here once: filling a batch for at most
BATCH_WINDOW_MS (`fill_batch`) and reading an answer's `batchItemFailures` (`failed_items`). The
loop that drives a source is the poller's (streamfn.poller.loop).
"""

from __future__ import annotations

import hashlib
import importlib
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from streamfn.core.plugins import BACKENDS

if TYPE_CHECKING:
    from streamfn.core.connections import AsyncClient
    from streamfn.core.crash import Checkpoint
    from streamfn.core.settings import Settings
    from streamfn.stream.events import BatchResponse

T = TypeVar("T")

# The longest an invocation of a batch may take: a cold infer container loads every model before
# it answers. The Lambda invoker waits this long, and a local queue's visibility timeout is
# sized from it.
INVOKE_TIMEOUT_S = 120


# Ingest's side.
@dataclass(frozen=True, slots=True)
class Appended:
    """An accepted message: its id and the time it was received (epoch ms); `replayed` when an
    earlier request with the same Idempotency-Key appended it and nothing was appended now."""

    message_id: str
    received_at: int
    replayed: bool = False


class RefusedError(RuntimeError):
    """The stream cannot take the entry now (a 503 with Retry-After); `reason` labels the
    metric of refusals."""

    reason = "unavailable"


class EntryTooLargeError(ValueError):
    """The request, as one entry, is larger than the stream takes (a 413)."""


class IdempotencyKeyReusedError(ValueError):
    """The Idempotency-Key came with another request (another model or records): a 422."""

    def __init__(self) -> None:
        super().__init__(
            "this Idempotency-Key was sent with another request (another model or other records) "
            "within IDEMPOTENCY_TTL_S: use a new key for a new request"
        )


class IdempotencyInProgressError(RefusedError):
    """A request with the same Idempotency-Key is being appended now (a 409 with Retry-After;
    Kinesis and SQS only: on Redis the check and the append are one step)."""

    reason = "idempotency_in_progress"


class Writer(Protocol):
    """Where ingest appends a request: one entry (model, data, received_at) per request.

    With an `idempotency` (a hash of the request's Idempotency-Key), a request the same key
    appended within IDEMPOTENCY_TTL_S is not appended again: its first Appended is returned, with
    `replayed`; the same key with another model or other records is IdempotencyKeyReusedError."""

    async def append(
        self, model: str, records: list[dict[str, Any]], idempotency: str | None = None
    ) -> Appended:
        """Append one entry, or raise RefusedError, EntryTooLargeError or
        IdempotencyKeyReusedError."""
        ...


def fingerprint(model: str, data: bytes) -> str:
    """What a request is, to compare a retry with (records canonical: spellings do not count)."""
    return hashlib.sha256(model.encode() + b"\0" + data).hexdigest()


# The poller's side.
@dataclass
class Batch(Generic[T]):
    """One batch a source read: its items as the source keeps them, the id a failure names each
    by (`batchItemFailures`), and the event the infer function takes."""

    items: list[T]
    ids: list[str]
    event: dict[str, Any]
    where: dict[str, str] = field(default_factory=dict)  # what a log line says of its place


@dataclass(frozen=True)
class Settled:
    """What became of a batch's items once the function answered."""

    acked: int  # done: acknowledged, deleted or checkpointed
    failed: int  # to be tried again
    dead: int = 0  # given up (dead-lettered, or sent to the on-failure destination)


class Source(Protocol):
    """A stream as one poller reads it."""

    consumer: str  # this poller's name among the stream's readers
    name: str  # what the stream is, for logs (a stream key, an ARN, a queue URL)
    # What a poll can meet that waiting cures (the service or Redis down): the poller backs off.
    transient: tuple[type[BaseException], ...]

    def batches(self, wait: bool) -> Iterator[Batch[Any]]:
        """The batches to invoke now, each read when the one before is settled; with `wait`,
        wait a little for work when there is none."""
        ...

    def holding(self, batch: Batch[Any]) -> AbstractContextManager[object]:
        """Keep the batch this poller's while the function works on it."""
        ...

    def settle(self, batch: Batch[Any], failed: set[str]) -> Settled:
        """The function answered: finish the items it did not name in `failed`."""
        ...

    def crashed(self, batch: Batch[Any], error: BaseException) -> bool:
        """The function failed on the batch itself (not an outage): whether the source took
        care of it (Kinesis splits the batch); False, and the poller backs off and the batch
        comes back whole."""
        ...

    def leave(self) -> None:
        """The poller stops: let go of what this consumer holds."""
        ...


@dataclass(frozen=True)
class SourceOptions:
    """What a backend needs to make a poller's source."""

    settings: Settings
    consumer: str
    checkpoint: Checkpoint
    partitions: Sequence[int] | None = None  # of the stream's partitions, those to read


class LocalSetupError(RuntimeError):
    """A stream could not be created on its local emulator."""


class Backend(Protocol):
    """One stream backend: ingest's writer, the poller's source, and the local emulation that
    `streamfn up --backend` runs."""

    def writer(self, settings: Settings, redis: AsyncClient) -> Writer:
        """A writer for ingest, on the event loop `redis` is bound to."""
        ...

    def source(self, options: SourceOptions) -> Source:
        """A source for one poller."""
        ...

    def local_variables(self, endpoint: str) -> dict[str, str]:
        """The variables naming the stream on a local emulator at `endpoint` ({}: none)."""
        ...

    def create_local(self, settings: Settings) -> None:
        """Create the stream on the local emulator unless it is there (LocalSetupError)."""
        ...


def backend(name: str) -> Backend:
    """The backend STREAM_BACKEND names (KeyError for a name not in BACKENDS)."""
    if name not in BACKENDS:
        raise KeyError(f"no stream backend {name!r}; choose one of {', '.join(BACKENDS)}")
    found: Backend = importlib.import_module(f"streamfn.stream.{name}").BACKEND
    return found


def fill_batch(
    read: Callable[[int, bool], list[T]], limit: int, window_s: float, linger_s: float = 0.0
) -> list[T]:
    """Up to `limit` items: the first read may wait (`read(count, first=True)`); then the
    poller takes what is waiting, read again while more keeps coming, for at most `window_s`.
    With `linger_s`, a read that finds nothing is tried once more after that pause (under load,
    so that batches grow and their fixed cost is shared); without, the batch goes at once."""
    items = read(limit, True)
    deadline = time.monotonic() + window_s
    while items and len(items) < limit and (left := deadline - time.monotonic()) > 0:
        more = read(limit - len(items), False)
        if not more and linger_s:
            time.sleep(min(linger_s, left))
            more = read(limit - len(items), False)
        if not more:
            break  # nothing more is coming: go now rather than wait for a fuller batch
        items += more
    return items


def failed_items(response: BatchResponse, ids: Collection[str]) -> set[str]:
    """The ids an answer names in `batchItemFailures`; an id not in the batch fails it whole,
    as on Lambda."""
    named = {str(f.get("itemIdentifier")) for f in response.get("batchItemFailures", [])}
    return set(ids) if named - set(ids) else named
