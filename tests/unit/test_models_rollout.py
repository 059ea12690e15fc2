"""A rollout's parts: the split by entity, the registry moves in their safe order, the serving
figures each process keeps and shares, a canary step's verdict, and the decision records."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from embedded.documents.store import DocumentStore as EmbeddedDocumentStore
from shared.models import rollout
from shared.models.canary import CanaryPolicy, check
from shared.models.deployment import (
    CANARY_PERCENT,
    CHALLENGER,
    CHAMPION,
    Deployment,
    Traffic,
    bucket,
    canary_percent,
)
from shared.models.registry import MODELS_CONTAINER, ModelRegistry
from shared.models.service import BadModelRequest, parse_approval
from shared.models.serving_stats import SERVING_STATS, Observed, ServingStats, observed

pytestmark = pytest.mark.unit
T0 = dt.datetime(2026, 12, 7, 20, 0, tzinfo=dt.UTC)


@pytest.fixture
def store(tmp_path: Path) -> EmbeddedDocumentStore:
    return EmbeddedDocumentStore(tmp_path / "documents.sqlite")


def _registry(store: EmbeddedDocumentStore, versions: int = 2) -> ModelRegistry:
    registry = ModelRegistry(store.container(MODELS_CONTAINER))
    for _ in range(versions):
        registry.create_version(
            "fraud",
            source="file:///x",
            run_id="r",
            metrics={"pr_auc": 0.5},
            params={},
            signature={"inputs": [], "outputs": []},
            input_example=[],
            training_data={},
            code_version="t",
        )
    registry.set_alias("fraud", CHAMPION, 1)
    return registry


def test_an_entity_sees_one_version_and_stays_with_the_challenger_as_it_grows() -> None:
    deployments = {p: Deployment("fraud", "champion", "challenger", p) for p in (10, 25, 50)}
    entities = [f"account-{i}" for i in range(20_000)]
    shares = {
        p: Counter(d.pick(e) for e in entities)["challenger"] / 20_000
        for p, d in deployments.items()
    }
    assert shares[10] == pytest.approx(0.10, abs=0.01)
    assert shares[25] == pytest.approx(0.25, abs=0.01)
    assert shares[50] == pytest.approx(0.50, abs=0.015)
    for entity in entities[:2000]:
        if deployments[10].pick(entity) == "challenger":
            assert deployments[25].pick(entity) == deployments[50].pick(entity) == "challenger"
    # Each model splits on its own: fraud's canary and maintenance's take different entities.
    differ = sum(bucket("fraud", e) != bucket("maintenance", e) for e in entities[:1000])
    assert differ > 950
    alone = Deployment("fraud", "champion")
    assert {alone.pick(e) for e in entities[:100]} == {"champion"}


@given(st.text(max_size=200))
def test_a_bucket_is_in_range_for_any_entity(entity: str) -> None:
    assert 0 <= bucket("fraud", entity) < 100


@pytest.mark.parametrize(
    ("tag", "percent"),
    [
        ("10", 10),
        ("100", 100),
        ("0", 0),
        ("101", 0),
        ("-5", 0),
        ("ten", 0),
        ("", 0),
        ("1e2", 0),
        (" 25 ", 25),
        ("0010", 0),
        ("٣", 0),
    ],
)
def test_a_damaged_share_sends_nobody_to_the_challenger(tag: str, percent: int) -> None:
    assert canary_percent(tag) == percent


def test_the_moves_keep_alias_and_split_together(store: EmbeddedDocumentStore) -> None:
    registry = _registry(store)
    assert rollout.current(registry, "fraud") == Traffic(1)
    rollout.share(registry, "fraud", 2, 10)
    assert rollout.current(registry, "fraud") == Traffic(1, 2, 10)
    assert rollout.lifecycle_summary(registry.get_model("fraud"))["traffic"] == {"1": 90, "2": 10}
    rollout.share(registry, "fraud", 2, 25)
    rollout.roll_back(registry, "fraud")
    model = registry.get_model("fraud")
    assert CHALLENGER not in model.aliases and model.tags[CANARY_PERCENT] == "0"
    assert rollout.current(registry, "fraud") == Traffic(1)
    rollout.roll_back(registry, "fraud")  # again, as a retried activity would: no change
    rollout.share(registry, "fraud", 2, 50)
    assert rollout.promote(registry, "fraud", 2) == 1
    assert rollout.promote(registry, "fraud", 2) == 2  # retried: the same end state
    assert rollout.current(registry, "fraud") == Traffic(2)
    rollout.stage(registry, "fraud", "promoted", "retrain:fraud:http:20261207T20")
    summary = rollout.lifecycle_summary(registry.get_model("fraud"))
    assert summary == {
        "stage": "promoted",
        "traffic": {"2": 100},
        "instance_id": "retrain:fraud:http:20261207T20",
    }


def test_a_model_not_registered_yet_has_no_stage_to_set(store: EmbeddedDocumentStore) -> None:
    registry = ModelRegistry(store.container(MODELS_CONTAINER))
    rollout.stage(registry, "fraud", "training", "retrain:fraud:http:20261207T200000")
    assert registry.list_models() == []


def test_a_challenger_alias_without_a_share_serves_nobody(store: EmbeddedDocumentStore) -> None:
    registry = _registry(store)
    registry.set_alias("fraud", CHALLENGER, 2)  # a crash between the two writes of `share`
    assert rollout.current(registry, "fraud") == Traffic(1)


def test_figures_are_sampled_shared_and_merged_across_processes(
    store: EmbeddedDocumentStore,
) -> None:
    container = store.container(SERVING_STATS)
    now = [T0]
    processes = [
        ServingStats(container, clock=lambda: now[0], flush_s=3600, process=f"p{i}")
        for i in range(2)
    ]
    rng = np.random.default_rng(1)
    for minute in range(3):
        now[0] = T0 + dt.timedelta(minutes=minute, seconds=5)
        for stats in processes:
            stats.record("fraud", 1, rows=500, probe_s=0.00001, scores=rng.uniform(0, 1, 500))
            stats.record("fraud", 2, rows=50, probe_s=0.00001, scores=rng.uniform(0, 1, 50))
            stats.record("fraud", 2, rows=0, errors=5)
        for stats in processes:
            assert stats.flush() == 2
            assert stats.flush() == 0  # nothing changed since
    champion = observed(container, "fraud", 1, T0, T0 + dt.timedelta(minutes=3))
    challenger = observed(container, "fraud", 2, T0, T0 + dt.timedelta(minutes=3))
    assert champion.rows == 3000 and champion.errors == 0
    assert challenger.rows == 300 and challenger.errors == 30
    assert challenger.error_rate == pytest.approx(30 / 330)
    assert champion.scores.size == 3000 and champion.p99_ms == pytest.approx(0.01)
    first_minute = observed(container, "fraud", 1, T0, T0 + dt.timedelta(minutes=1))
    assert first_minute.rows == 1000
    # A step that began after a slot did sees none of that slot (it held traffic from before).
    late = observed(
        container, "fraud", 1, T0 + dt.timedelta(seconds=1), T0 + dt.timedelta(minutes=3)
    )
    assert late.rows == 2000
    documents = container.query(rollout.Query(partition_key="fraud", page_size=100)).documents
    assert {d["process"] for d in documents} == {"p0", "p1"}
    assert all(set(d) >= {"rows", "errors", "latency_ms", "scores"} for d in documents)


def test_a_busy_minute_keeps_a_bounded_uniform_sample(store: EmbeddedDocumentStore) -> None:
    stats = ServingStats(None, clock=lambda: T0)
    for start in range(0, 100_000, 1000):
        stats.record("fraud", 1, rows=1000, probe_s=0.001, scores=np.arange(start, start + 1000))
    seen = stats.observed("fraud", 1)
    assert seen.rows == 100_000 and seen.scores.size == 1000
    assert 40_000 < float(np.mean(seen.scores)) < 60_000  # drawn from the whole minute


def test_figures_survive_a_failed_flush(store: EmbeddedDocumentStore) -> None:
    class Down:
        def upsert_many(self, documents: object) -> None:
            raise OSError("down")

    stats = ServingStats(Down(), clock=lambda: T0, flush_s=3600)  # type: ignore[arg-type]
    stats.record("fraud", 1, rows=10, probe_s=0.001, scores=[0.5] * 10)
    with pytest.raises(OSError):
        stats.flush()
    stats.container = store.container(SERVING_STATS)
    assert stats.flush() == 1


def test_the_flusher_writes_in_the_background(store: EmbeddedDocumentStore) -> None:
    container = store.container(SERVING_STATS)
    stats = ServingStats(container, flush_s=0.05)
    stats.record("fraud", 1, rows=10, probe_s=0.001, scores=[0.1] * 10)
    written = threading.Event()
    for _ in range(100):
        if container.query(rollout.Query(partition_key="fraud")).documents:
            written.set()
            break
        threading.Event().wait(0.05)
    stats.close()
    assert written.is_set()


def _observed(rows: int, errors: int, latency: float, scores: np.ndarray) -> Observed:
    return Observed(rows, errors, np.full(100, latency), scores)


def test_a_canary_step_passes_fails_or_waits() -> None:
    rng = np.random.default_rng(3)
    policy = CanaryPolicy(min_rows=200)
    champion = _observed(5000, 0, 0.02, rng.beta(1, 20, 1000))
    good = _observed(600, 0, 0.02, rng.beta(1, 20, 600))
    passed = check(champion, good, policy)
    assert passed.verdict == "pass" and passed.reasons == ()
    assert passed.metrics["score_psi"] < 0.1

    erring = check(champion, _observed(600, 60, 0.02, rng.beta(1, 20, 600)), policy)
    assert erring.verdict == "fail" and "error rate" in erring.reasons[0]
    slow = check(champion, _observed(600, 0, 5.0, rng.beta(1, 20, 600)), policy)
    assert slow.verdict == "fail" and "p99 time of one record" in slow.reasons[0]
    few = Observed(600, 0, np.full(10, 5.0), rng.beta(1, 20, 600))
    assert check(champion, few, policy).verdict == "pass"  # 10 timings judge nothing
    shifted = check(champion, _observed(600, 0, 0.02, rng.beta(5, 2, 600)), policy)
    assert shifted.verdict == "fail" and "score PSI" in shifted.reasons[0]
    quiet = check(champion, _observed(50, 0, 0.02, rng.beta(1, 20, 50)), policy)
    assert quiet.verdict == "wait" and "too little traffic" in quiet.reasons[0]
    broken = check(champion, Observed(0, 600), policy)
    assert broken.verdict == "fail" and any("no row" in r for r in broken.reasons)


def test_a_decision_document_is_scrubbed_and_repeatable() -> None:
    card = "4111 1111 1111 1111"
    approval = {
        "decision": "approve",
        "comment": f"ok, see card {card}\nand more",
        "by": {"kind": "user", "id": "u1", "tenant": "t"},
        "at": T0.isoformat(),
    }
    decided: dict[str, Any] = {
        "model": "fraud",
        "decision": "approved",
        "instance": "retrain:fraud:http:20261207T20",
        "at": T0,
        "actor": {"kind": "user", "id": "u1"},
        "from_version": 1,
        "to_version": 2,
        "gate": {"uplift": 0.05},
        "approval": approval,
    }
    first = rollout.decision_document(**decided)
    again = rollout.decision_document(**decided)  # an activity run again
    assert first == again and first["id"] == "retrain:fraud:http:20261207T20:approved"
    assert card not in str(first) and "1111" not in str(first) and "\n" not in str(first)
    with pytest.raises(ValueError):
        rollout.decision_document(
            model="fraud",
            decision="bribed",
            instance="i",
            at=T0,
            actor={},
            from_version=1,
            to_version=2,
        )


def test_an_escalation_is_a_cloudevent_for_the_alerts_hub() -> None:
    document = rollout.decision_document(
        model="fraud",
        decision="escalated",
        instance="retrain:fraud:drift:20261207T20",
        at=T0,
        actor={"kind": "policy", "id": "escalate"},
        from_version=1,
        to_version=2,
    )
    event = rollout.escalation_event(document)
    body = json.loads(event.body)
    assert body["id"] == document["id"] and body["type"] == rollout.ESCALATION_EVENT_TYPE
    assert body["specversion"] == "1.0" and body["source"] == "/models/fraud"
    assert body["data"]["to_version"] == 2 and event.partition_key == "fraud"
    assert rollout.escalation_event(document) == event  # a retry sends the same event


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b" ",
        b"[]",
        b'{"decision": "maybe"}',
        b'{"decision": true}',
        b'{"decision": null}',
        b'{"decision": "approve", "comment": 5}',
        b'{"decision": "approve", "extra": 1}',
        b'{"decision": "approve", "comment": "' + b"x" * 501 + b'"}',
        b"\xff",
        b"{" * 5000,
    ],
)
def test_an_approval_that_is_not_one_is_refused(body: bytes) -> None:
    with pytest.raises(BadModelRequest):
        parse_approval(body)


def test_an_approval_is_a_decision_and_a_comment() -> None:
    assert parse_approval(b'{"decision": "reject"}') == {"decision": "reject", "comment": ""}
    assert parse_approval(b'{"decision": "approve", "comment": "fine"}')["comment"] == "fine"
