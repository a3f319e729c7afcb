"""A hashed share of messages: which ones a setting such as SHADOW_SHARE or EXPLAIN_SHARE takes.

The choice depends only on the message id (and on what the share is for), so a redelivered
message is chosen again or not, whichever poller, process or retry sees it; each purpose salts
the hash so that, say, the explained messages are not exactly the shadow-scored ones.
"""

from __future__ import annotations

import zlib

HASH_RANGE = 2**32
MASK = HASH_RANGE - 1


def in_share(message_id: str, share: float, purpose: str = "") -> bool:
    """Whether a message falls in `share` (0 to 1) of the messages, for `purpose`."""
    if share >= 1:
        return True
    return mixed(zlib.crc32(f"{purpose}{message_id}".encode())) < share * HASH_RANGE


def mixed(value: int) -> int:
    """A 32-bit hash spread evenly (MurmurHash3's finaliser). CRC-32 alone is affine: stream
    ids a few milliseconds apart differ in their last digits only, and their CRCs' top bits
    move together, so that 60 consecutive ids fell half in a 25% share, or none in a 5% one."""
    value ^= value >> 16
    value = (value * 0x85EBCA6B) & MASK
    value ^= value >> 13
    value = (value * 0xC2B2AE35) & MASK
    return value ^ (value >> 16)
