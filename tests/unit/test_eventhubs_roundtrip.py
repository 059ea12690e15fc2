"""Property tests: the partition-key hash, and events of any bytes and properties round trip."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedded.eventlog.log import EventLog, InvalidEvent, PropertyValue, event_log_path
from embedded.eventlog.partitioning import partition_for_key, partition_key_hash
from embedded.eventlog.records import decode_properties, encode_properties

pytestmark = pytest.mark.unit

keys = st.text(st.characters(exclude_categories=["Cs"]), max_size=300)
property_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
    st.binary(max_size=50),
)
events = st.lists(
    st.tuples(
        st.binary(max_size=2000),
        st.one_of(st.none(), keys),
        st.dictionaries(st.text(max_size=20), property_values, max_size=5),
    ),
    min_size=1,
    max_size=20,
)


@given(key=keys, partitions=st.integers(min_value=1, max_value=1024))
def test_partition_hash_is_stable_and_in_range(key: str, partitions: int) -> None:
    partition_key_hash.cache_clear()
    first = partition_for_key(key, partitions)
    partition_key_hash.cache_clear()
    assert partition_for_key(key, partitions) == first
    assert 0 <= first < partitions
    assert -(2**15) <= partition_key_hash(key) < 2**15


@given(
    key=st.tuples(keys, st.characters(categories=["Cs"]), keys).map(lambda parts: "".join(parts))
)
def test_keys_without_a_utf8_form_are_rejected(key: str) -> None:
    with pytest.raises(UnicodeEncodeError):
        partition_key_hash(key)


def _same(left: PropertyValue, right: PropertyValue) -> bool:
    if isinstance(left, float) and math.isnan(left):
        return isinstance(right, float) and math.isnan(right)
    return type(left) is type(right) and left == right


def test_any_bodies_keys_and_properties_round_trip(tmp_path: Path) -> None:
    event_log = EventLog(event_log_path(tmp_path), busy_timeout_s=5)

    @settings(max_examples=150, deadline=None)
    @given(batch=events)
    def check(batch: list[tuple[bytes, str | None, dict[str, PropertyValue]]]) -> None:
        positions = event_log.append_batch("roundtrip", batch)
        for (body, key, properties), position in zip(batch, positions, strict=True):
            [stored] = event_log.read(
                "roundtrip", position.partition, position.sequence_number - 1, 1
            )
            assert stored.sequence_number == position.sequence_number
            assert stored.body == body
            assert stored.partition_key == key
            assert stored.properties.keys() == properties.keys()
            assert all(_same(properties[k], stored.properties[k]) for k in properties)
            if key is not None:
                assert position.partition == partition_for_key(key, 4)

    try:
        check()
    finally:
        event_log.close()


@given(value=st.one_of(st.sets(st.integers(), max_size=2), st.lists(st.integers(), max_size=2)))
def test_unsupported_property_values_are_refused(value: object) -> None:
    with pytest.raises(InvalidEvent, match="not a supported value"):
        encode_properties(0, {"p": value})  # type: ignore[dict-item]


@given(properties=st.dictionaries(st.text(max_size=10), property_values, max_size=5))
def test_encoded_properties_are_plain_json(properties: dict[str, PropertyValue]) -> None:
    text = encode_properties(0, properties)
    if not properties:
        assert text is None
        return
    assert text is not None
    assert isinstance(json.loads(text), dict)
    decoded = decode_properties(text)
    assert all(_same(properties[k], decoded[k]) for k in properties)
