"""Blob path patterns: matching, binding data, escapes, and clear errors for bad patterns."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devhost.blob.patterns import BlobPattern, BlobPatternError, resolve_output_path

pytestmark = pytest.mark.unit

# Blob names as a filesystem can hold them: no NUL; '/' separates folders.
name_text = st.text(st.characters(blacklist_characters="\0", codec="utf-8"), min_size=1)
segment_text = st.text(st.characters(blacklist_characters="\0/", codec="utf-8"), min_size=1)


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("landing/{name}", "landing/report.csv", {"name": "report.csv"}),
        ("landing/{name}", "landing/2024/01/report.csv", {"name": "2024/01/report.csv"}),
        ("landing/{name}.csv", "landing/report.csv", {"name": "report"}),
        ("landing/{name}.csv", "landing/a.csv.csv", {"name": "a.csv"}),
        (
            "landing/dir/{folder}/{name}.{ext}",
            "landing/dir/2024/01/report.tar.gz",
            {"folder": "2024/01", "name": "report.tar", "ext": "gz"},
        ),
        ("images/{name}-original.png", "images/cat-original.png", {"name": "cat"}),
        ("images/{{literal}}/{name}", "images/{literal}/x.png", {"name": "x.png"}),
        ("images/a}}b{{c/{name}", "images/a}b{c/x", {"name": "x"}),
        ("images/fixed.png", "images/fixed.png", {}),
    ],
)
def test_pattern_matches_and_extracts_binding_data(
    pattern: str, path: str, expected: dict[str, str]
) -> None:
    assert BlobPattern.parse(pattern).match(path) == expected


@pytest.mark.parametrize(
    ("pattern", "path"),
    [
        ("landing/{name}.csv", "landing/report.txt"),
        ("landing/{name}.csv", "other/report.csv"),
        ("landing/{name}.csv", "landingx/report.csv"),
        ("landing/dir/{name}", "landing/report.csv"),
        ("images/{name}-original.png", "images/cat-thumb.png"),
        ("images/{{literal}}/{name}", "images/literal/x.png"),
        ("images/fixed.png", "images/fixed.png.bak"),
        ("landing/{name}", "landing"),
    ],
)
def test_pattern_rejects_other_paths(pattern: str, path: str) -> None:
    assert BlobPattern.parse(pattern).match(path) is None


def test_matching_is_case_sensitive_like_blob_names() -> None:
    assert BlobPattern.parse("landing/{name}.csv").match("landing/a.CSV") is None


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("landing", "a blob path is 'container/blob-name'"),
        ("landing/", "a blob path is 'container/blob-name'"),
        ("/landing/{name}", "a blob path is 'container/blob-name'"),
        ("{container}/{name}", "cannot hold parameters"),
        ("Landing/{name}", "not a valid container name"),
        ("la/{name}", "not a valid container name"),
        ("land--ing/{name}", "not a valid container name"),
        ("landing/{name", "missing closing brace"),
        ("landing/name}", "missing opening brace"),
        ("landing/{}", "parameter name at position 9 is empty"),
        ("landing/{1name}", "parameter name '1name' is invalid"),
        ("landing/{my name}", "parameter name 'my name' is invalid"),
        ("landing/{data.url}", "parameter name 'data.url' is invalid"),
        ("landing/{rand-guid}", "parameter name 'rand-guid' is invalid"),
        ("landing/{name}/{NAME}", "appears twice"),
    ],
)
def test_bad_patterns_raise_a_typed_error_saying_why(pattern: str, fragment: str) -> None:
    with pytest.raises(BlobPatternError) as raised:
        BlobPattern.parse(pattern)
    assert isinstance(raised.value, ValueError)
    assert fragment in str(raised.value)


@given(name=name_text)
def test_any_name_round_trips_through_a_whole_name_pattern(name: str) -> None:
    pattern = BlobPattern.parse("landing/{name}")
    assert pattern.match(f"landing/{name}") == {"name": name}


@given(name=name_text)
def test_any_name_round_trips_through_an_extension_pattern(name: str) -> None:
    pattern = BlobPattern.parse("landing/{name}.csv")
    assert pattern.match(f"landing/{name}.csv") == {"name": name}


@given(
    folder=name_text,
    name=segment_text,
    ext=st.text(st.characters(blacklist_characters="\0/.", codec="utf-8"), min_size=1),
)
def test_folder_name_and_extension_round_trip(folder: str, name: str, ext: str) -> None:
    pattern = BlobPattern.parse("landing/dir/{folder}/{name}.{ext}")
    data = {"folder": folder, "name": name, "ext": ext}
    path = pattern.render(data)
    assert path == f"landing/dir/{folder}/{name}.{ext}"
    assert pattern.match(path) == data


@st.composite
def patterns_with_values(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    """A random blob-name pattern (literals with braces escaped, parameters) and values."""
    literal = st.text(st.characters(blacklist_characters="\0", codec="utf-8"), max_size=4)
    count = draw(st.integers(min_value=1, max_value=4))
    parts, values = [], {}
    for index in range(count):
        text = draw(literal)
        parts.append(text.replace("{", "{{").replace("}", "}}"))
        parts.append(f"{{p{index}}}")
        values[f"p{index}"] = draw(name_text)
    parts.append(draw(literal).replace("{", "{{").replace("}", "}}"))
    return "bucket/" + "".join(parts), values


@given(patterns_with_values())
def test_rendered_paths_match_and_render_back_to_themselves(
    case: tuple[str, dict[str, str]],
) -> None:
    # Greedy parameters may split a path differently from the values that built it
    # (as in Azure), but the binding data always rebuilds the same path.
    text, values = case
    pattern = BlobPattern.parse(text)
    path = pattern.render(values)
    data = pattern.match(path)
    assert data is not None
    assert set(data) == set(values)
    assert pattern.render(data) == path


def test_output_paths_resolve_trigger_data_case_insensitively() -> None:
    assert resolve_output_path("processed/{Name}.json", {"name": "r1"}) == (
        "processed",
        "r1.json",
    )


def test_output_paths_support_azure_builtins() -> None:
    container, name = resolve_output_path("out/{rand-guid}_{DateTime}.txt", {})
    assert container == "out"
    guid = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    assert re.fullmatch(guid + r"_\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z\.txt", name)


def test_output_path_with_unknown_parameter_names_it() -> None:
    with pytest.raises(BlobPatternError, match=r"\{name\}.*binding data: none"):
        resolve_output_path("processed/{name}.json", {})


def test_output_path_needs_a_valid_container() -> None:
    with pytest.raises(BlobPatternError, match="not a valid container name"):
        resolve_output_path("{c}/x.json", {"c": "UPPER"})
