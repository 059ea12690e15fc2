"""Features defined once: the fold's definitions, and the same features online (in batches,
redelivered, across restarts, state in the document store) as offline (point in time)."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
from pathlib import Path
from typing import Any

import pytest

from benchmarks.traffic import Traffic, simulated_clock
from embedded.documents.store import DocumentStore
from shared.features.base import NONE, epoch_seconds, stats
from shared.features.interactions import InteractionFeatures
from shared.features.offline import point_in_time
from shared.features.online import FEATURES_CONTAINER, OnlineFeatures, state_id
from shared.features.payments import PaymentFeatures
from shared.features.sets import BY_EVENT_TYPE, FEATURE_SETS
from shared.features.telemetry import TelemetryFeatures

pytestmark = pytest.mark.unit

START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def rows_of(count: int, seed: int = 7) -> dict[str, list[dict[str, Any]]]:
    """Simulated events as bronze rows: fields, event time, hub position (a partition per
    entity, as the intake's partition key makes it)."""
    traffic = Traffic(seed, fraud_rate=0.05, accounts=60, devices=12, users=40)
    rows: dict[str, list[dict[str, Any]]] = {}
    sequences: dict[int, int] = {}
    for event in itertools.islice(traffic.events(simulated_clock(START, 2.0)), count):
        feature_set = BY_EVENT_TYPE.get(event["type"])
        if feature_set is None:
            continue
        partition = hash(event["data"][feature_set.entity]) % 4
        sequences[partition] = sequences.get(partition, -1) + 1
        moment = dt.datetime.fromisoformat(event["time"])
        row = {**event["data"], "t": epoch_seconds(moment)}
        row.update(partition=partition, sequence_number=sequences[partition], id=event["id"])
        rows.setdefault(event["type"], []).append(row)
    return rows


def at(seconds: float, **fields: Any) -> dict[str, Any]:
    return {"t": START.timestamp() + seconds, **fields}


def pay(seconds: float, amount: float, **fields: Any) -> dict[str, Any]:
    base = {"account_id": "a", "country": "FR", "merchant_category": "5411", "channel": "pos"}
    return at(seconds, amount=amount, **{**base, **fields})


def fold(feature_set: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [features for _, features in point_in_time(feature_set, rows)]


def test_payment_windows_include_the_payment_and_see_only_earlier_ones() -> None:
    rows = [
        pay(0, 10.0),
        pay(60, 30.0),
        pay(700, 1.0, channel="ecommerce", merchant_category="5816"),
        pay(760, 2.0, country="NG", channel="atm"),
        pay(4000, 100.0),
        pay(90_000, 20.0),
    ]
    found = fold(PaymentFeatures(), rows)
    assert [f["count_10m"] for f in found] == [1, 2, 1, 2, 1, 1]
    assert [f["count_1h"] for f in found] == [1, 2, 3, 4, 3, 1]
    assert [f["count_24h"] for f in found] == [1, 2, 3, 4, 5, 2]
    assert found[3]["amount_1h"] == 10.0 + 30.0 + 1.0 + 2.0
    assert found[0]["amount_vs_usual"] == 1.0 and found[1]["amount_vs_usual"] == 3.0
    assert [f["first_time_country"] for f in found] == [1, 0, 0, 1, 0, 0]
    assert found[2]["merchant_category_risk"] == 0.8 and found[0]["merchant_category_risk"] == 0.1
    assert [f["small_count_5m"] for f in found] == [0, 0, 1, 2, 0, 0]
    assert found[0]["seconds_since_last"] == NONE and found[1]["seconds_since_last"] == 60.0
    assert (found[2]["ecommerce"], found[3]["atm"], found[0]["atm"]) == (1.0, 1.0, 0.0)
    assert all(set(PaymentFeatures.numeric) == set(f) for f in found)


def test_telemetry_trends_over_the_last_readings_and_the_hour() -> None:
    def reading(seconds: float, temperature: float, vibration: float) -> dict[str, Any]:
        return at(
            seconds,
            device_id="d",
            temperature_c=temperature,
            vibration_mm_s=vibration,
            pressure_kpa=300.0,
            rpm=1450.0,
        )

    rows = [reading(600 * n, 60.0 + n, 2.0) for n in range(12)]
    found = fold(TelemetryFeatures(), rows)
    last = found[-1]
    assert last["temperature_mean_last10"] == pytest.approx(
        sum(60.0 + n for n in range(2, 12)) / 10
    )
    assert last["temperature_slope_last10"] == pytest.approx(6.0)  # one degree per 10 minutes
    assert last["temperature_slope_1h"] == pytest.approx(6.0)
    assert last["vibration_std_1h"] == 0.0 and last["seconds_since_last"] == 600.0
    assert found[0]["temperature_slope_last10"] == 0.0 and found[0]["temperature_std_1h"] == 0.0
    assert all(set(TelemetryFeatures.numeric) == set(f) for f in found)


def test_stats_match_the_textbook() -> None:
    values, times = [1.0, 3.0, 2.0, 6.0], [0.0, 3600.0, 7200.0, 10_800.0]
    mean, std, slope = stats(values, times)
    assert mean == 3.0 and std == pytest.approx(math.sqrt(3.5))
    assert slope == pytest.approx(1.4)  # per hour
    assert stats([], []) == (NONE, NONE, 0.0)


def test_interactions_keep_recent_items_and_sessions() -> None:
    def touch(seconds: float, item: str, session: str, action: str = "view") -> dict[str, Any]:
        return at(seconds, user_id="u", item_id=item, session_id=session, action=action)

    rows = [
        touch(0, "i1", "s1"),
        touch(10, "i2", "s1", "purchase"),
        touch(20, "i1", "s1"),
        touch(5000, "i3", "s2"),
    ]
    found = fold(InteractionFeatures(), rows)
    assert found[0]["recent_items"] == () and found[2]["recent_items"] == ("i2", "i1")
    assert found[3]["recent_items"] == ("i1", "i2")
    assert [f["session_events"] for f in found] == [1, 2, 3, 1]
    assert [f["sessions_24h"] for f in found] == [1, 1, 1, 2]
    assert [f["events_1h"] for f in found] == [1, 2, 3, 1]
    assert [f["purchases_24h"] for f in found] == [0, 1, 1, 1]


def test_epoch_seconds_is_arrows_microseconds_divided() -> None:
    moment = dt.datetime(2026, 12, 7, 12, 34, 56, 789_123, tzinfo=dt.UTC)
    micros = 1_796_646_896_789_123
    assert epoch_seconds(moment) == micros / 1_000_000
    assert epoch_seconds(moment.astimezone(dt.timezone(dt.timedelta(hours=5)))) == micros / 1e6


@pytest.mark.parametrize("seed", [7, 11])
def test_online_features_equal_offline_across_redelivery_and_restarts(
    tmp_path: Path, seed: int
) -> None:
    rows = rows_of(12_000, seed)
    store = DocumentStore(tmp_path / "features.sqlite3")
    rng = random.Random(seed)
    for feature_set in FEATURE_SETS:
        stream = rows[feature_set.event_type]
        offline = fold(feature_set, stream)
        online: list[dict[str, Any] | None] = [None] * len(stream)
        features = OnlineFeatures(store.container(FEATURES_CONTAINER))
        position = 0
        while position < len(stream):
            size = rng.randint(1, 300)
            batch = stream[position : position + size]
            computed = features.compute(feature_set, batch)
            fate = rng.random()
            if fate < 0.15:
                continue  # crashed before landing: the same batch comes again
            for offset, found in enumerate(computed.features):
                if found is not None:
                    online[position + offset] = found
            if fate < 0.3:
                # landed, crashed before the checkpoint: redelivered after its states
                features.commit(computed)
                again = features.compute(feature_set, batch)
                assert again.features == [None] * len(batch) and again.moved == 0
                position += size
                continue
            features.commit(computed)
            position += size
            if rng.random() < 0.1:  # a restart: a new process, the same store
                features = OnlineFeatures(store.container(FEATURES_CONTAINER))
        assert online == offline, feature_set.name
        assert len(stream) > 500


def test_state_ids_are_valid_for_any_entity() -> None:
    payments = PaymentFeatures()
    ids = {state_id(payments, entity) for entity in ("a/b", "a#b", "x" * 128, "é?", "a/b ")}
    assert len(ids) == 5
    assert all(not set(i) & set("/\\?#") and len(i) < 64 for i in ids)


class _CountingReads:
    """A container that counts the documents it reads."""

    def __init__(self, container: Any) -> None:
        self.container = container
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.container, name)

    def read(self, id: str, partition_key: Any) -> Any:
        self.reads += 1
        return self.container.read(id, partition_key)

    def read_many(self, keys: list[tuple[str, Any]]) -> Any:
        self.reads += len(keys)
        return self.container.read_many(keys)


@pytest.mark.parametrize("seed", [3, 5])
def test_instances_taking_partitions_from_each_other_fold_what_the_other_committed(
    tmp_path: Path, seed: int
) -> None:
    """Two instances share the store and take each partition from each other at random
    batches (a rebalance): each reads again the states of a partition it did not follow, so
    the features equal the offline fold; an instance that follows a partition reads nothing."""
    rows = rows_of(8_000, seed)
    store = DocumentStore(tmp_path / "features.sqlite3")
    rng = random.Random(seed)
    for feature_set in FEATURE_SETS:
        stream = rows[feature_set.event_type]
        offline = {
            row["id"]: found for row, found in zip(stream, fold(feature_set, stream), strict=True)
        }
        counted = [_CountingReads(store.container(FEATURES_CONTAINER)) for _ in range(2)]
        instances = [OnlineFeatures(container) for container in counted]  # type: ignore[arg-type]
        online: dict[str, Any] = {}
        by_partition: dict[int, list[dict[str, Any]]] = {}
        for row in stream:
            by_partition.setdefault(row["partition"], []).append(row)
        cursors = dict.fromkeys(by_partition, 0)
        while any(cursors[p] < len(by_partition[p]) for p in cursors):
            partition = rng.choice([p for p in cursors if cursors[p] < len(by_partition[p])])
            size = rng.randint(1, 80)
            batch = by_partition[partition][cursors[partition] : cursors[partition] + size]
            instance = instances[0 if rng.random() < 0.7 else 1]
            computed = instance.compute(feature_set, batch)
            instance.commit(computed)
            for row, found in zip(batch, computed.features, strict=True):
                assert found is not None
                online[row["id"]] = found
            cursors[partition] += len(batch)
        assert online == offline, feature_set.name

    follower = _CountingReads(store.container(FEATURES_CONTAINER))
    features = OnlineFeatures(follower)  # type: ignore[arg-type]
    payments = [dict(row, partition=9) for row in rows["payment.transaction"][:400]]
    for number, row in enumerate(payments):
        row["sequence_number"] = number
    features.commit(features.compute(PaymentFeatures(), payments[:200]))
    first = follower.reads
    features.commit(features.compute(PaymentFeatures(), payments[200:]))
    seen = {row["account_id"] for row in payments[:200]}
    new = {row["account_id"] for row in payments[200:]} - seen
    assert follower.reads - first == len(new)  # only the accounts it had not seen
