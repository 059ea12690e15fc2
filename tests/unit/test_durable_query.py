"""The Durable HTTP API's query parameters: one strict parser for list and purge."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import MultiDict

from devhost.durable import query
from devhost.durable.events import payload_text
from devhost.durable.query import QueryError

pytestmark = pytest.mark.unit


def test_status_names_are_exact_and_a_wrong_case_is_refused_with_a_hint() -> None:
    assert query.statuses("Running, Completed,Running") == ("Running", "Completed")
    assert query.statuses(None) == () and query.statuses(" , ") == ()
    with pytest.raises(QueryError, match="case-sensitive: 'Completed'"):
        query.statuses("completed")
    with pytest.raises(QueryError, match="'Finished' is not a runtime status"):
        query.statuses("Finished")


def test_list_and_purge_read_the_same_filters() -> None:
    params = MultiDict(
        [
            ("runtimeStatus", "Failed"),
            ("runtimeStatus", "Terminated"),
            ("createdTimeFrom", "2024-05-01"),
        ]
    )
    listed, purged = query.instance_query(params), query.purge_query(params)
    assert listed.statuses == purged.statuses == ("Failed", "Terminated")
    assert listed.created_from == purged.created_from == "2024-05-01T00:00:00.000000Z"


@pytest.mark.parametrize("status", ["Running", "Pending", "Suspended", "Running,Completed"])
def test_a_purge_refuses_statuses_of_instances_still_going(status: str) -> None:
    with pytest.raises(QueryError, match="only finished instances can be purged"):
        query.purge_query({"createdTimeFrom": "2024-01-01", "runtimeStatus": status})


def test_a_purge_needs_created_time_from_and_defaults_to_every_finished_status() -> None:
    with pytest.raises(QueryError, match="createdTimeFrom"):
        query.purge_query({"runtimeStatus": "Completed"})
    assert query.purge_query({"createdTimeFrom": "2024-01-01"}).statuses == (
        "Completed", "Failed", "Terminated", "Canceled",
    )  # fmt: skip


@pytest.mark.parametrize(
    "text", ["²", "99999999999999999999999", "2147483648", "0", "-1", " 1", "1.0", "١", "9" * 5000]
)
def test_top_is_ascii_digits_within_int32(text: str) -> None:
    with pytest.raises(QueryError, match="top must be a whole number"):
        query.top(text)


def test_top_bounds() -> None:
    assert query.top("1") == 1 and query.top(str(2**31 - 1)) == 2**31 - 1
    assert query.top(None) is None and query.top("") is None


@pytest.mark.parametrize(
    "text",
    ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "yesterday", "２０２４-01-01"],
)
def test_times_out_of_range_or_malformed_are_refused(text: str) -> None:
    with pytest.raises(QueryError, match="createdTimeFrom"):
        query.moment("createdTimeFrom", text)


def test_times_are_stored_in_utc_with_a_four_digit_year() -> None:
    assert query.moment("t", "0001-01-01T00:00:00-01:00") == "0001-01-01T01:00:00.000000Z"
    assert query.moment("t", "2024-05-01T10:00:00+02:00") == "2024-05-01T08:00:00.000000Z"
    assert query.moment("t", "2024-05-01T10:00:00") == "2024-05-01T10:00:00.000000Z"


@pytest.mark.parametrize("text", ["yes", "1", "on", "truthy"])
def test_flags_are_true_or_false(text: str) -> None:
    with pytest.raises(QueryError, match="showInput must be true or false"):
        query.flag({"showInput": text}, "showInput", True)
    assert query.flag({"showInput": "FALSE"}, "showInput", True) is False
    assert query.flag({}, "showInput", True) is True


def test_deeply_nested_bodies_are_refused_as_json_errors() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(ValueError, match="nested too deeply"):
        payload_text(deep)
    with pytest.raises(ValueError, match="nested too deeply"):
        payload_text(b'"' + deep + b'"')


@given(
    st.dictionaries(
        st.sampled_from(
            ["runtimeStatus", "createdTimeFrom", "createdTimeTo", "instanceIdPrefix", "top"]
        ),
        st.text(),
    )
)
def test_any_query_string_parses_or_is_a_query_error(params: dict[str, str]) -> None:
    for parse in (query.instance_query, query.purge_query):
        try:
            parsed = parse(params)
        except QueryError:
            continue
        for moment in (parsed.created_from, parsed.created_to):
            if moment is not None:
                assert datetime.fromisoformat(moment.replace("Z", "+00:00")).year >= 1
        assert set(parsed.statuses) <= set(query.RUNTIME_STATUSES)
    try:
        page = query.top(params.get("top"))
    except QueryError:
        return
    assert page is None or 1 <= page <= query.TOP_MAX
