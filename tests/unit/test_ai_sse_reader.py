"""The upstream's server-sent events read without the SDK's typed chunks: fields, comments,
events split over several `data:` lines, `[DONE]`, and error events raised as the SDK does."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2  # the openai SDK's HTTP client
import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.ai.sse_reader import RawChunks

pytestmark = pytest.mark.unit


class _Response:
    """What `RawChunks` reads of an httpx response: its lines, its request, `aclose`."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.request = httpx2.Request("POST", "http://upstream/v1/chat/completions")
        self.closed = False

    async def aiter_lines(self) -> AsyncIterator[str]:
        for line in self.lines:
            yield line

    async def aclose(self) -> None:
        self.closed = True


async def _read(lines: list[str]) -> list[dict[str, object]]:
    return [chunk async for chunk in RawChunks(_Response(lines))]  # type: ignore[arg-type]


async def test_events_are_read_with_their_fields_and_comments_skipped() -> None:
    lines = [
        ": keep-alive",
        "",
        "event: message",
        'data: {"a":',
        "data: 1}",
        "",
        'data:{"b": 2}',
        "id: 7",
        "",
        "data: [DONE]",
        "",
        'data: {"after": "done"}',
        "",
    ]
    assert await _read(lines) == [{"a": 1}, {"b": 2}]


async def test_an_error_event_raises_as_the_sdk_does() -> None:
    with pytest.raises(openai.APIError, match="overloaded"):
        await _read(['data: {"error": {"message": "overloaded"}}', ""])
    with pytest.raises(openai.APIError, match="not JSON"):
        await _read(["data: {oops", ""])
    with pytest.raises(openai.APIError, match="not a JSON object"):
        await _read(["data: [1, 2]", ""])


async def test_close_ends_the_stream() -> None:
    response = _Response(['data: {"a": 1}', "", 'data: {"a": 2}', ""])
    chunks = RawChunks(response)  # type: ignore[arg-type]
    assert await anext(chunks) == {"a": 1}
    await chunks.close()
    assert response.closed
    with pytest.raises(StopAsyncIteration):
        await anext(chunks)


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\r\n")), max_size=12))
async def test_any_lines_give_chunks_or_an_api_error(lines: list[str]) -> None:
    try:
        chunks = await _read(lines)
    except openai.APIError:
        return
    assert all(isinstance(chunk, dict) for chunk in chunks)
