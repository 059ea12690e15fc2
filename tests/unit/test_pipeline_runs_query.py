"""The runs API's `top`: ASCII digits from 1 to 500, anything else a BadRunsQuery."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrations.medallion_runs import TOP_MAX, BadRunsQuery, parse_top

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text", ["²", "١", "0", "501", "", " 5", "5 ", "+5", "1e2", "9" * 5000])
def test_top_refuses_what_is_not_a_plain_number_in_range(text: str) -> None:
    with pytest.raises(BadRunsQuery, match="top must be a whole number from 1 to 500"):
        parse_top(text)


def test_top_defaults_and_bounds() -> None:
    assert parse_top(None) == 20
    assert parse_top("1") == 1 and parse_top("500") == 500 and parse_top("007") == 7


@given(st.text())
def test_any_text_is_a_top_in_range_or_refused(text: str) -> None:
    try:
        top = parse_top(text)
    except BadRunsQuery:
        plain = text.isascii() and text.isdigit() and len(text) <= 9
        assert not (plain and 1 <= int(text) <= TOP_MAX)
        return
    assert 1 <= top <= TOP_MAX and text.isascii()
