"""Which partition an event lands in: Event Hubs' own partition-key hash, or round robin."""

from __future__ import annotations

import functools
import struct

_MASK = 0xFFFFFFFF
_TRIPLET = struct.Struct("<3I")


def _rotate(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (32 - bits))) & _MASK


def lookup3(data: bytes) -> tuple[int, int]:
    """Bob Jenkins' lookup3 `hashlittle2` with zero seeds: the pair (c, b) of 32-bit hashes.

    Event Hubs hashes partition keys with it (the gateway, and the SDKs that resolve
    partitions client side), so a key lands in the same partition here as in Azure.
    """
    length = len(data)
    a = b = c = (0xDEADBEEF + length) & _MASK
    triplets = (length - 1) // 12 if length > 12 else 0
    for index in range(triplets):
        w0, w1, w2 = _TRIPLET.unpack_from(data, index * 12)
        a = (a + w0) & _MASK
        b = (b + w1) & _MASK
        c = (c + w2) & _MASK
        a = ((a - c) & _MASK) ^ _rotate(c, 4)
        c = (c + b) & _MASK
        b = ((b - a) & _MASK) ^ _rotate(a, 6)
        a = (a + c) & _MASK
        c = ((c - b) & _MASK) ^ _rotate(b, 8)
        b = (b + a) & _MASK
        a = ((a - c) & _MASK) ^ _rotate(c, 16)
        c = (c + b) & _MASK
        b = ((b - a) & _MASK) ^ _rotate(a, 19)
        a = (a + c) & _MASK
        c = ((c - b) & _MASK) ^ _rotate(b, 4)
        b = (b + a) & _MASK
    tail = data[triplets * 12 :]
    if not tail:
        return c, b
    # lookup3 reads the last 1..12 bytes as little-endian words; zero padding adds nothing.
    x0, x1, x2 = _TRIPLET.unpack(tail.ljust(12, b"\0"))
    a = (a + x0) & _MASK
    b = (b + x1) & _MASK
    c = (c + x2) & _MASK
    c = ((c ^ b) - _rotate(b, 14)) & _MASK
    a = ((a ^ c) - _rotate(c, 11)) & _MASK
    b = ((b ^ a) - _rotate(a, 25)) & _MASK
    c = ((c ^ b) - _rotate(b, 16)) & _MASK
    a = ((a ^ c) - _rotate(c, 4)) & _MASK
    b = ((b ^ a) - _rotate(a, 14)) & _MASK
    c = ((c ^ b) - _rotate(b, 24)) & _MASK
    return c, b


@functools.lru_cache(maxsize=65536)
def partition_key_hash(partition_key: str) -> int:
    """The signed 16-bit hash Event Hubs computes for a partition key (UTF-8 encoded).

    Raises UnicodeEncodeError for a key holding lone surrogates, which has no UTF-8 form.
    """
    hash1, hash2 = lookup3(partition_key.encode("utf-8"))
    folded = (hash1 ^ hash2) & 0xFFFF
    return folded - 0x10000 if folded >= 0x8000 else folded


def partition_for_key(partition_key: str, partition_count: int) -> int:
    """The partition (0-based) a key maps to among `partition_count`, as Event Hubs maps it."""
    return abs(partition_key_hash(partition_key)) % partition_count
