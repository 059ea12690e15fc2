"""Keyed pseudonyms for personal data (HMAC-SHA256), and a scrubber for payloads of unknown shape.

The same value under the same key always gives the same pseudonym, so pseudonymized columns
still join and group; without the key they cannot be reversed or recomputed. The scrubber
protects what no contract describes (extras, dead-letter payloads): every run of 12 to 19
digits that passes Luhn, and every run of more than 19 digits, is replaced by its pseudonym.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

from shared.events.validators import luhn_valid

MIN_KEY_BYTES = 32
_BLOCK = 64  # SHA-256's block size, which HMAC pads the key to
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))
# Digits with at most one space or dash between them, as card numbers are written.
_DIGIT_RUN = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){11,}(?![0-9])")
_MAX_SCRUB_INT = 10**11  # integers below this have at most 11 digits and cannot be a PAN
PSEUDONYM_PREFIX = "pseudonym:"


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
        """Text with every card-number-like digit run replaced by `pseudonym:<hex>`."""
        if len(text) < 12:
            return text
        return _DIGIT_RUN.sub(self._replace_run, text)

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
            if abs(value) >= _MAX_SCRUB_INT:
                return self.scrub_text(str(value)) if _is_pan_like(str(abs(value))) else value
            return value
        if isinstance(value, float) and value.is_integer() and abs(value) >= _MAX_SCRUB_INT:
            digits = str(int(abs(value)))
            return PSEUDONYM_PREFIX + self.pseudonym(digits) if _is_pan_like(digits) else value
        return value

    def _replace_run(self, match: re.Match[str]) -> str:
        run = match.group(0)
        digits = run.replace(" ", "").replace("-", "")
        if not _is_pan_like(digits):
            return run
        return PSEUDONYM_PREFIX + self.pseudonym(digits)


def _is_pan_like(digits: str) -> bool:
    # Longer runs may hide a card number inside them; they are rare enough to hide whole.
    return len(digits) > 19 or (len(digits) >= 12 and luhn_valid(digits))
