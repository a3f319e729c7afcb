"""A hashed share of messages: which ones a setting such as SHADOW_SHARE or EXPLAIN_SHARE takes.

The choice depends only on the message id (and on what the share is for), so a redelivered
message is chosen again or not, whichever poller, process or retry sees it; each purpose salts
the hash so that, say, the explained messages are not exactly the shadow-scored ones.
"""

from __future__ import annotations

import zlib

HASH_RANGE = 2**32


def in_share(message_id: str, share: float, purpose: str = "") -> bool:
    """Whether a message falls in `share` (0 to 1) of the messages, for `purpose`."""
    if share >= 1:
        return True
    return zlib.crc32(f"{purpose}{message_id}".encode()) < share * HASH_RANGE
