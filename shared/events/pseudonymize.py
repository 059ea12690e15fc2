"""Keyed pseudonyms for personal data (HMAC-SHA256), and a scrubber for strings and payloads.

The same value under the same key always gives the same pseudonym, so pseudonymized columns
still join and group; without the key they cannot be reversed or recomputed. The scrubber
protects what no contract field describes (envelope attributes, identifiers, extras,
extensions, dead-letter payloads, file names, log lines): every card number that the one
detector (`shared.privacy.card_numbers`) finds is replaced by `pseudonym:<hex>`, the pseudonym
of its digits, the same as a card number column holds for it. Scrubbing twice changes nothing.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from shared.privacy.card_numbers import (
    PSEUDONYM_PREFIX,
    candidates,
    redact,
)

MIN_KEY_BYTES = 32
_BLOCK = 64  # SHA-256's block size, which HMAC pads the key to
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))
_MAX_SCRUB_INT = 10**11  # numbers below this have at most 11 digits and cannot be a PAN
# A float holds 15 to 17 significant digits: from 1e16 on, its integer part may be a 17 to 19
# digit card number rounded (most of its digits), which no checksum can recognise any more.
_ROUNDED_PAN_FLOATS = (1e16, 1e20)
__all__ = ["MIN_KEY_BYTES", "PSEUDONYM_PREFIX", "Pseudonymizer"]


class Pseudonymizer:
    """HMAC-SHA256 under one key, as 64 lower-case hex characters."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"a pseudonym key needs at least {MIN_KEY_BYTES} bytes")
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        padded = key.ljust(_BLOCK, b"\0")
        # HMAC(k, m) = H((k ^ opad) || H((k ^ ipad) || m)): hashing the padded keys once and
        # copying the states per value halves the cost of hmac.digest() on short values.
        self._inner = hashlib.sha256(padded.translate(_IPAD))
        self._outer = hashlib.sha256(padded.translate(_OPAD))

    def pseudonym(self, value: str) -> str:
        """The pseudonym of one value."""
        inner = self._inner.copy()
        inner.update(value.encode("utf-8", "surrogatepass"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def pseudonyms(self, values: Sequence[str]) -> list[str]:
        """The pseudonyms of many values, in order; a value repeated in `values` (a card used
        several times in a batch) is hashed once."""
        distinct = dict.fromkeys(values)
        if len(distinct) == len(values):
            return self._hash_all(values)
        known = dict(zip(distinct, self._hash_all(list(distinct)), strict=True))
        return list(map(known.__getitem__, values))

    def _hash_all(self, values: Sequence[str]) -> list[str]:
        inner_state, outer_state = self._inner, self._outer
        result: list[str] = []
        append = result.append
        for value in values:
            inner = inner_state.copy()
            inner.update(value.encode("utf-8", "surrogatepass"))
            outer = outer_state.copy()
            outer.update(inner.digest())
            append(outer.hexdigest())
        return result

    def scrub_text(self, text: str) -> str:
        """Text with every card number (and run of over 19 digits) replaced by
        `pseudonym:<hex>`."""
        return redact(text, self._token)

    def scrub_columns(self, columns: Sequence[pa.Array]) -> list[pa.Array | None]:
        """`scrub_text` over `pa.string()` columns: each column scrubbed, or None where none of
        its values changes. The columns are screened together in C (`candidates`), and only
        the values flagged are looked at in Python."""
        scrubbed: list[pa.Array | None] = []
        for column, flagged in zip(columns, candidates(columns), strict=True):
            values = column.to_pylist() if flagged else []
            changed = False
            for index in flagged:
                text = values[index]
                cleaned = self.scrub_text(text) if text is not None else None
                if cleaned is not text:
                    values[index], changed = cleaned, True
            scrubbed.append(pa.array(values, pa.string()) if changed else None)
        return scrubbed

    def scrub(self, value: Any) -> Any:
        """A copy of a JSON value with card-number-like strings, keys and numbers pseudonymized.

        Iterative, so hostile nesting cannot exhaust the stack.
        """
        if not isinstance(value, dict | list):
            return self._scrub_scalar(value)
        root: dict[str, Any] | list[Any] = {} if isinstance(value, dict) else []
        stack: list[tuple[Any, Any]] = [(value, root)]
        while stack:
            source, target = stack.pop()
            items = source.items() if isinstance(source, dict) else enumerate(source)
            for key, item in items:
                if isinstance(item, dict | list):
                    child: Any = {} if isinstance(item, dict) else []
                    stack.append((item, child))
                else:
                    child = self._scrub_scalar(item)
                if isinstance(target, dict):
                    target[self.scrub_text(str(key))] = child
                else:
                    target.append(child)
        return root

    def _scrub_scalar(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int):
            if abs(value) < _MAX_SCRUB_INT:
                return value
            text = str(value)
            scrubbed = self.scrub_text(text)
            return value if scrubbed is text else scrubbed
        if isinstance(value, float) and math.isfinite(value) and abs(value) >= _MAX_SCRUB_INT:
            low, high = _ROUNDED_PAN_FLOATS
            if low <= abs(value) < high:
                return self._token(repr(value))
            text = repr(value)  # positional below 1e16: "4011777766665550.5"
            scrubbed = self.scrub_text(text)
            return value if scrubbed is text else scrubbed
        return value

    def _token(self, digits: str) -> str:
        return PSEUDONYM_PREFIX + self.pseudonym(digits)
