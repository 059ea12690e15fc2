"""The audit chain's format and `verify_partition`: each kind of tampering is found, and named."""

from __future__ import annotations

import copy
import hashlib
import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from embedded.audit.chain import (
    FIELDS,
    Head,
    MalformedHead,
    Problem,
    canonical_json,
    genesis_hash,
    new_record,
    next_partition,
    partition_of,
    record_hash,
    record_id,
    record_time,
    seal,
    verify_partition,
)
from tests.auditdata import HOUR, PARTITION, build_chain, end_of

pytestmark = pytest.mark.unit


def check(records: list[dict[str, Any]], **ends: Any) -> Problem | None:
    shuffled = copy.deepcopy(records)
    random.Random(7).shuffle(shuffled)  # any order given
    return verify_partition(shuffled, partition=PARTITION, **ends)


def rehash(record: dict[str, Any]) -> None:
    record["hash"] = record_hash(record)


def test_the_format_is_documented_and_stable() -> None:
    assert partition_of(HOUR + 3599.5) == PARTITION
    assert record_time(HOUR + 1.25) == "2026-12-07T12:00:01.250000Z"
    assert next_partition("2026-12-31T23") == "2027-01-01T00"
    expected = hashlib.sha256(b"audit-chain-genesis:2026-12-07T12").hexdigest()
    assert genesis_hash(PARTITION) == expected
    record = {"b": "é", "a": 1, "hash": "x", "_etag": '"1"', "_ts": 5, "_lsn": 9, "_rid": "r"}
    assert canonical_json(record) == '{"a":1,"b":"é"}'.encode()
    assert record_hash(record) == hashlib.sha256('{"a":1,"b":"é"}'.encode()).hexdigest()
    with pytest.raises(ValueError):
        canonical_json({"a": float("nan")})


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), _JSON, max_size=8))
@settings(max_examples=300)
def test_canonical_bytes_are_the_standard_librarys(record: dict[str, Any]) -> None:
    body = {k: v for k, v in record.items() if k != "hash" and not k.startswith("_")}
    try:
        expected = json.dumps(
            body, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: neither writes it
        with pytest.raises(ValueError):
            canonical_json(record)
        return
    assert canonical_json(record) == expected


def test_no_float_outside_json_passes_as_null() -> None:
    for value in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError):
            canonical_json({"status": value})
        with pytest.raises(ValueError):
            canonical_json({"status": None, "x": [value]})
    assert canonical_json({"status": None}) == b'{"status":null}'


def test_a_new_record_is_sealed_as_seal_does_and_named_by_its_place() -> None:
    fields = {"action": "request", "outcome": "success", "actor": {"kind": "user", "id": "o"}}
    made = new_record(PARTITION, 42, "2026-12-07T12:00:01.000000Z", fields, "0" * 64)
    assert made["id"] == record_id(PARTITION, 42) == "2026-12-07T12.000000042"
    assert made == seal({k: v for k, v in made.items() if k != "hash"})
    assert made["hash"] == record_hash(made)
    with pytest.raises(ValueError, match="fields are"):
        new_record(PARTITION, 1, "t", {"_etag": "x"}, "0" * 64)
    with pytest.raises(ValueError, match="fields are"):
        new_record(PARTITION, 1, "t", {"hash": "x"}, "0" * 64)
    assert "hash" not in FIELDS and not any(name.startswith("_") for name in FIELDS)


def test_a_valid_chain_holds_in_any_order_with_system_properties() -> None:
    records = build_chain(6)
    for n, record in enumerate(records):
        record.update({"_etag": f'"{n}"', "_ts": 1, "_lsn": n, "_self": "s", "_attachments": "a"})
    assert check(records) is None
    assert check(records, checkpoint=end_of(records)) is None
    assert verify_partition([]) is None
    assert records[0]["prev"] == genesis_hash(PARTITION)
    assert all(b["prev"] == a["hash"] for a, b in zip(records, records[1:], strict=False))


def test_an_edited_record_is_named() -> None:
    records = build_chain(6)
    records[2]["reason"] = "nothing to see"
    problem = check(records)
    assert problem is not None
    assert (problem.kind, problem.seq, problem.id) == ("edited", 3, records[2]["id"])
    assert "hash does not match" in problem.detail


def test_an_edit_with_its_hash_recomputed_is_named_by_the_broken_link() -> None:
    records = build_chain(6)
    records[2]["actor"]["id"] = "someone-else"
    rehash(records[2])
    problem = check(records)
    assert problem is not None and (problem.kind, problem.seq) == ("edited", 3)
    last = build_chain(6)
    last[5]["reason"] = "changed"
    rehash(last[5])
    assert check(last) is None  # the chain's own links cannot show it...
    problem = check(last, checkpoint=end_of(build_chain(6)))  # ...its checkpoint does
    assert problem is not None and (problem.kind, problem.seq) == ("edited", 6)


def test_a_deleted_record_is_named_with_the_one_after_it() -> None:
    records = build_chain(6)
    gone = records.pop(3)
    problem = check(records)
    assert problem is not None
    assert (problem.kind, problem.seq, problem.id) == ("removed", 4, records[3]["id"])
    assert gone["id"] != problem.id and "seq 4 is missing" in problem.detail


def test_a_truncated_tail_is_removed_against_the_checkpoint_and_the_head() -> None:
    records = build_chain(6)
    closed = end_of(records)
    head = Head(PARTITION, 6, records[5]["hash"])
    del records[4:]
    assert check(records) is None  # nothing in the records themselves shows it
    for ends in ({"checkpoint": closed}, {"head": head}):
        problem = check(records, **ends)
        assert problem is not None
        assert (problem.kind, problem.seq, problem.id) == ("removed", 5, None)
        assert "the last 2 removed" in problem.detail
    problem = verify_partition([], partition=PARTITION, checkpoint=closed)
    assert problem is not None and (problem.kind, problem.seq) == ("removed", 1)


def test_an_inserted_record_is_named() -> None:
    records = build_chain(6)
    forged = seal({**records[2], "id": "forged", "reason": "it was fine"})
    problem = check([*records, forged])
    assert problem is not None
    assert (problem.kind, problem.seq, problem.id) == ("inserted", 3, "forged")
    assert f"goes on from {records[2]['id']}" in problem.detail


def test_a_record_appended_after_the_hour_closed_is_inserted() -> None:
    records = build_chain(6)
    closed = end_of(records)
    extra = seal({**records[5], "id": "late", "seq": 7, "prev": records[5]["hash"]})
    assert check([*records, extra]) is None
    problem = check([*records, extra], checkpoint=closed)
    assert problem is not None and (problem.kind, problem.seq, problem.id) == (
        "inserted",
        7,
        "late",
    )
    sealed = Head(PARTITION, 6, records[5]["hash"], "closed", "2026-12-07T13")
    problem = check([*records, extra], head=sealed)
    assert problem is not None and problem.kind == "inserted"
    assert check([*records, extra], head=Head(PARTITION, 6, records[5]["hash"])) is None  # open
    far = seal({**records[5], "id": "far", "seq": 40, "prev": "0" * 64})
    problem = check([*records, far], checkpoint=closed)
    assert problem is not None and (problem.kind, problem.id) == ("inserted", "far")


@pytest.mark.parametrize("with_time", [False, True])
@pytest.mark.parametrize("rehashed", [False, True])
@pytest.mark.parametrize(("first", "second"), [(1, 3), (2, 3), (5, 6), (1, 6)])
def test_swapped_records_are_reordered(
    first: int, second: int, rehashed: bool, with_time: bool
) -> None:
    records = build_chain(6)
    a, b = records[first - 1], records[second - 1]
    fields = ("seq", "time") if with_time else ("seq",)
    for name in fields:
        a[name], b[name] = b[name], a[name]
    if rehashed:
        rehash(a)
        rehash(b)
    problem = check(records, checkpoint=end_of(build_chain(6)))
    assert problem is not None
    assert (problem.kind, problem.seq) == ("reordered", first)


def test_the_first_bad_record_is_named_where_several_are() -> None:
    records = build_chain(8)
    records[5]["reason"] = "later edit"
    del records[2]
    problem = check(records)
    assert problem is not None and (problem.kind, problem.seq) == ("removed", 3)


def test_a_chain_moved_to_another_hour_does_not_hold() -> None:
    records = build_chain(3, partition="2026-12-07T11")
    problem = verify_partition(records, partition=PARTITION)
    assert problem is not None and (problem.kind, problem.seq) == ("edited", 1)


def test_heads_are_checked_when_read() -> None:
    records = build_chain(2)
    head = Head(PARTITION, 2, records[1]["hash"], "closed", "2026-12-07T13")
    assert Head.from_document(head.document()) == head
    for broken in ({"last_seq": 0}, {"state": "gone"}, {"last_hash": None}, {"partition": 1}):
        with pytest.raises(MalformedHead):
            Head.from_document({**head.document(), **broken})


# Any single mutation of a valid chain is detected, and named for what it is.

MUTABLE = ("action", "outcome", "resource", "reason", "client", "time", "status")


@st.composite
def mutated(draw: st.DrawFn) -> tuple[list[dict[str, Any]], str, list[dict[str, Any]]]:
    count = draw(st.integers(2, 10))
    records = build_chain(count)
    original = copy.deepcopy(records)
    kind = draw(st.sampled_from(["edit", "edit-rehash", "delete", "insert", "swap"]))
    at = draw(st.integers(0, count - 1))
    if kind == "edit":
        field = draw(st.sampled_from([*MUTABLE, "seq", "prev", "hash", "id", "partition"]))
        value = draw(st.one_of(st.text(max_size=8), st.integers(-3, 20), st.none()))
        assume(records[at].get(field) != value or type(records[at].get(field)) is not type(value))
        records[at][field] = value
        expected = "edited"
    elif kind == "edit-rehash":
        field = draw(st.sampled_from(MUTABLE))
        value = draw(st.text(max_size=8))
        assume(records[at][field] != value)
        records[at][field] = value
        rehash(records[at])
        expected = "edited"
    elif kind == "delete":
        del records[at]
        expected = "removed"
    elif kind == "insert":
        seq = draw(st.integers(1, count + 1))
        chained = draw(st.booleans())
        prev = (
            (original[seq - 2]["hash"] if seq > 1 else genesis_hash(PARTITION))
            if chained
            else (draw(st.text("0123456789abcdef", min_size=64, max_size=64)))
        )
        forged = {**original[min(seq, count) - 1], "id": "forged", "seq": seq, "prev": prev}
        forged["reason"] = draw(st.text(max_size=8))
        records.append(seal(forged))
        expected = "inserted"
    else:
        other = draw(st.integers(0, count - 1))
        assume(other != at)
        for name in ("seq", "time") if draw(st.booleans()) else ("seq",):
            records[at][name], records[other][name] = records[other][name], records[at][name]
        if draw(st.booleans()):
            rehash(records[at])
            rehash(records[other])
        expected = "reordered"
    return original, expected, records


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(), st.randoms(use_true_random=False))
def test_any_single_mutation_is_detected_and_named(
    case: tuple[list[dict[str, Any]], str, list[dict[str, Any]]], order: random.Random
) -> None:
    original, expected, records = case
    assert verify_partition(original, checkpoint=end_of(original)) is None
    order.shuffle(records)
    problem = verify_partition(records, partition=PARTITION, checkpoint=end_of(original))
    assert problem is not None, json.dumps(records, indent=1)
    assert problem.kind == expected, str(problem)
