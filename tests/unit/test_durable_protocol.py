"""The engine's reading of the SDK's protocol: actions, failures, payloads, retry, timestamps."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import azure.durable_functions as df
import pytest
from dateutil.parser import parse as dateutil_parse
from hypothesis import given
from hypothesis import strategies as st

from devhost.durable import sdk_speedups
from devhost.durable.actions import (
    ActionType,
    OrchestratorProtocolError,
    flatten,
    parse_failure,
    parse_state,
)
from devhost.durable.events import format_time, parse_time, payload_text
from devhost.durable.retry import DurableRetryOptions, RetryOptionsError
from tests.orchestrator_replay import first_turn, run_orchestrator

pytestmark = pytest.mark.unit


def test_compound_actions_flatten_in_the_order_the_sdk_numbers_tasks() -> None:
    def orchestrator(context):
        retry = context.call_activity_with_retry("r", df.RetryOptions(100, 2), 1)
        event = context.wait_for_external_event("go")
        timer = context.create_timer(context.current_utc_datetime + timedelta(minutes=1))
        yield context.task_any(
            [context.task_all([context.call_activity("a", 1), retry]), event, timer]
        )

    result = parse_state(run_orchestrator(orchestrator, first_turn()))
    assert [a.type for a in result.actions] == [
        ActionType.CALL_ACTIVITY,
        ActionType.CALL_ACTIVITY_WITH_RETRY,
        ActionType.WAIT_FOR_EXTERNAL_EVENT,
        ActionType.CREATE_TIMER,
    ]
    assert [a.takes_task_id for a in result.actions] == [True, True, False, True]
    assert result.actions[1].raw["retryOptions"]["maxNumberOfAttempts"] == 2
    assert not result.is_done


@pytest.mark.filterwarnings("ignore:azure.functions df_loads was called without expected_type")
def test_an_orchestrator_exception_carries_its_state_message_and_stack() -> None:
    def orchestrator(context):
        context.set_custom_status("half way")
        yield context.call_activity("a", 1)
        raise ValueError("kaput")

    now = format_time(datetime.now(UTC))
    completed = {"EventType": 5, "EventId": -1, "IsPlayed": False, "Timestamp": now}
    history = [*first_turn(), {**completed, "TaskScheduledId": 0, "Result": "1"}]
    with pytest.raises(Exception) as caught:
        run_orchestrator(orchestrator, history)
    result = parse_failure(caught.value)
    assert result.error == "ValueError: kaput"
    assert result.custom_status == "half way"
    assert result.details is not None and 'raise ValueError("kaput")' in result.details


@pytest.mark.parametrize("text", [None, 3, "not json", "[1, 2]", '{"actions": 5}'])
def test_anything_but_an_orchestration_state_is_a_protocol_error(text: object) -> None:
    with pytest.raises(OrchestratorProtocolError):
        parse_state(text)


def test_unknown_action_types_are_rejected() -> None:
    with pytest.raises(OrchestratorProtocolError, match="unknown actionType"):
        flatten([[{"actionType": 99}]])


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", None),
        (b'{"a": 1}', '{"a": 1}'),
        (b"5", "5"),
        (json.dumps(json.dumps({"a": 1})).encode(), '{"a": 1}'),  # the SDK client's encoding
        (b'"plain words"', '"plain words"'),
        (b'"7"', "7"),
    ],
)
def test_payloads_from_curl_and_from_the_sdk_decode_alike(
    body: bytes, expected: str | None
) -> None:
    assert payload_text(body) == expected


def test_a_body_that_is_not_json_is_refused() -> None:
    with pytest.raises(ValueError):
        payload_text(b"{nope")


def test_retry_delays_follow_backoff_and_cap() -> None:
    policy = DurableRetryOptions.from_json(
        {
            "firstRetryIntervalInMilliseconds": 100,
            "maxNumberOfAttempts": 5,
            "backoffCoefficient": 2,
            "maxRetryIntervalInMilliseconds": 350,
            "retryTimeoutInMilliseconds": 1000,
        }
    )
    assert [policy.delay_ms(n) for n in (1, 2, 3, 4)] == [100, 200, 350, 350]
    assert not policy.timed_out(999) and policy.timed_out(1000)
    assert DurableRetryOptions.from_json(policy.to_json()) == policy


@pytest.mark.parametrize(
    "options",
    [None, {}, {"firstRetryIntervalInMilliseconds": 0, "maxNumberOfAttempts": 1},
     {"firstRetryIntervalInMilliseconds": 5, "maxNumberOfAttempts": "x"}],
)  # fmt: skip
def test_bad_retry_options_are_reported(options: object) -> None:
    with pytest.raises(RetryOptionsError):
        DurableRetryOptions.from_json(options)


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30)))
def test_the_fast_timestamp_parser_matches_dateutil(moment: datetime) -> None:
    text = format_time(moment)
    fast = sdk_speedups.fast_parser(dateutil_parse)
    parsed = fast(text)
    assert parsed == dateutil_parse(text)
    assert parsed.tzinfo == dateutil_parse(text).tzinfo
    assert parse_time(text) == parsed


@pytest.mark.parametrize("text", ["2024-01-01", "2024-01-01T10:00:00+02:00", "Jan 5 2024"])
def test_other_timestamps_still_go_to_dateutil(text: str) -> None:
    assert sdk_speedups.fast_parser(dateutil_parse)(text) == dateutil_parse(text)


def test_the_speedup_installs_into_the_sdk_once() -> None:
    assert sdk_speedups.install()
    assert sdk_speedups.install()
    import sys

    module = sys.modules[sdk_speedups.HISTORY_EVENT_MODULE]
    assert module.dt_parse("2024-05-06T07:08:09.123456Z") == dateutil_parse(
        "2024-05-06T07:08:09.123456Z"
    )
    assert module.dt_parse("2024-05-06") == dateutil_parse("2024-05-06")
