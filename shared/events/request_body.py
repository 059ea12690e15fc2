"""A request body's `Content-Encoding` (gzip, deflate) undone within a size limit, as it inflates.

The Functions host hands a compressed body to the function as sent, so the app inflates it. A
small gzip body can inflate a thousandfold: the output is produced in bounded pieces and the
request is refused (413) as soon as it passes the limit, never inflated whole first.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from shared.events.errors import MalformedRequest, RequestTooLarge, UnsupportedContent

INFLATE_CHUNK_BYTES = 64 * 1024
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_IDENTITY = ("", "identity")
_CODINGS = ("gzip", "x-gzip", "deflate")


def decoded_body(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The body with its content coding undone; raises RequestTooLarge over `limit`
    bytes (sent or inflated), UnsupportedContent for a coding other than gzip or deflate,
    MalformedRequest for data that is not in its coding."""
    if len(body) > limit:
        raise RequestTooLarge(f"the body is {len(body)} bytes, over {_limit(limit)}")
    coding = (content_encoding or "").strip().lower()
    if coding in _IDENTITY:
        return body
    if coding not in _CODINGS:
        raise UnsupportedContent(
            "Content-Encoding must be gzip or deflate (or none), one coding at most"
        )
    return b"".join(inflated(body, coding, limit))


def inflated(
    body: bytes, coding: str, limit: int, chunk: int = INFLATE_CHUNK_BYTES
) -> Iterator[bytes]:
    """The inflated body in pieces of at most `chunk` bytes, `limit` bytes in all at most;
    raises RequestTooLarge at the first byte past it, MalformedRequest for bad or truncated data.
    Concatenated gzip members are read as one body, as gzip(1) does."""
    produced = 0
    rest = body
    while True:
        inflater = zlib.decompressobj(_wbits(coding, rest))
        data = rest
        while not inflater.eof:
            try:
                piece = inflater.decompress(data, chunk)
            except zlib.error as error:
                raise MalformedRequest(f"the body is not valid {coding} data: {error}") from None
            data = inflater.unconsumed_tail
            if piece:
                produced += len(piece)
                if produced > limit:
                    raise RequestTooLarge(f"the inflated body is over {_limit(limit)}")
                yield piece
            elif not data and not inflater.eof:
                raise MalformedRequest(f"the {coding} body is truncated")
        rest = inflater.unused_data
        if not rest or coding == "deflate":
            if rest:
                raise MalformedRequest("the body has data after its deflate stream")
            return


def _wbits(coding: str, data: bytes) -> int:
    if coding != "deflate":
        return _GZIP_WBITS
    # HTTP's deflate is the zlib format (RFC 9110 8.4.1.2); some clients send raw deflate.
    is_zlib = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
    return zlib.MAX_WBITS if is_zlib else -zlib.MAX_WBITS


def _limit(limit: int) -> str:
    return f"the limit of {limit} bytes ({limit / (1024 * 1024):g} MB)"
