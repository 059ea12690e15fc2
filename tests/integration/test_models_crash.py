"""Scoring in the stream across a SIGKILL of the devhost: the online features, the bronze scores
and the alerts come out as if the crash had not happened.

One run serves the module (`crashed_stream`): fraud and maintenance champions are trained (in
this process, from simulated history in a lake of their own, into the devhost's registry and
model files, which is what `POST /api/models/<name>/train` does, as `test_models_devhost`
shows, without the minutes of posting that history), then simulated payments, telemetry and
interactions are posted to the devhost, which is SIGKILLed just after a batch landed rows
(before their alerts and feature states are written) while the other partitions' batches are
wherever they are, started again on the same data dir, and posted to until every accepted
event is ingested.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
import requests

from benchmarks.traffic import Traffic, simulated_clock
from embedded.eventlog.log import EventLog, event_log_path
from shared.config import Settings, load_settings
from shared.documents.build import open_documents
from shared.documents.port import Condition, DocumentContainer, Json, Query
from shared.events.contracts import CONTRACTS
from shared.events.publisher import EVENTS_HUB, INGEST_CONSUMER_GROUP
from shared.features.base import FeatureSet
from shared.features.offline import point_in_time
from shared.features.online import FEATURES_CONTAINER, state_id
from shared.features.sets import BY_EVENT_TYPE, FEATURE_SETS
from shared.models.alerts import ALERTS_HUB
from shared.models.artifacts import open_artifacts
from shared.models.champions import Champion, ChampionCache
from shared.models.datasets import Reads, bronze_rows
from shared.models.registry import MODELS_CONTAINER, ModelRegistry
from shared.models.service import Models
from shared.models.training import ModelTraining, TrainingRequest
from shared.pipeline.lake import Lake, table_name
from tests.devhost_process import PROJECT_ROOT, DevhostProcess
from tests.integration.ingest_helpers import Platform, eventually
from tests.integration.ingest_helpers import bronze_rows as table_rows
from tests.modeldata import land_history, refresh

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SCORED = {c.scored_by: c.event_type for c in CONTRACTS if c.scored_by}  # model: event type
QUIET = {
    "DEVHOST_EVENTHUB_POLL_MS": "20",
    "AzureWebJobs.hourly_pipeline_run.Disabled": "true",
    "AzureWebJobs.nightly_table_maintenance.Disabled": "true",
    "AzureWebJobs.train_models.Disabled": "true",
    "AzureWebJobs.compact_bronze.Disabled": "true",
}
BATCH = 200  # events per POST
KILL_AFTER, AFTER_RESTART = 6, 6  # POSTs accepted before the kill, posted after the restart
MOST_BEFORE_KILL = 20  # POSTs, should ingestion be slow to land the first batches
SCORE_TOLERANCE = 1e-6


@dataclass
class CrashedStream:
    """What the run left: its data dir (the devhost stopped), the events posted and accepted,
    the alerts listed over HTTP at the end, and what the crash left to do: the events accepted
    and not landed at the kill, and the rows that batches redelivered after it found landed."""

    settings: Settings
    posted: set[str]
    accepted: set[str]
    alerts: list[dict[str, Any]]
    backlog: int
    found_landed: int

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir


class Poster(threading.Thread):
    """Posts batches of the stream until it has posted `count` or the host goes away."""

    def __init__(self, app: Platform, batches: Iterator[list[dict[str, Any]]], count: int):
        super().__init__(daemon=True)
        self.app, self.batches, self.count = app, batches, count
        self.posted: set[str] = set()
        self.accepted: set[str] = set()
        self.refused: list[str] = []
        self.done = 0

    def run(self) -> None:
        for events in itertools.islice(self.batches, self.count):
            self.posted.update(e["id"] for e in events)
            try:
                response = self.app.post(events)
            except requests.RequestException:
                return  # the host was killed; this batch may or may not be on the hub
            if response.status_code != 202:
                self.refused.append(response.text)
                return
            self.accepted.update(e["id"] for e in events)
            self.done += 1


def _stream() -> Iterator[list[dict[str, Any]]]:
    """Simulated traffic in event-time order (one entity's events always in order), in batches
    of `BATCH`: fewer entities than the history's, at a lower rate, so that each entity's
    events come about as often as in what the models learned from, and devices have readings
    enough to degrade within the stream."""
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    traffic = Traffic(11, accounts=100, devices=5, users=60, fraud_rate=0.05)
    events = traffic.events(simulated_clock(start, 0.05))
    while True:
        yield list(itertools.islice(events, BATCH))


def _train_champions(history: Path, settings: Settings) -> None:
    """Fraud and maintenance trained on two days of history, registered as champions in the
    data dir's registry (its documents and model files) before the devhost starts."""
    land_history(history, days=2, rate=0.2, seed=3, label_delay_scale=0.05, fraud_rate=0.05)
    refresh(history)
    documents = open_documents(settings.documents)
    try:
        registry = ModelRegistry(documents.container(MODELS_CONTAINER))
        training = ModelTraining(Lake(str(history)), registry, open_artifacts(settings.lake))
        training.train(TrainingRequest("fraud", "fraud-run", label_maturity_hours=2.0))
        training.train(TrainingRequest("maintenance", "maintenance-run"))
    finally:
        documents.close()


def _start(data_dir: Path, started: list[DevhostProcess]) -> Platform:
    env = {"PLATFORM_DATA_DIR": str(data_dir), **QUIET}
    host = DevhostProcess(PROJECT_ROOT, data_dir, env=env)
    started.append(host)
    return Platform(host.wait_ready(), data_dir)


def _load_champions(app: Platform) -> None:
    """Score a record with each model over HTTP, which waits for the champion's first load: the
    stream then flows from its first POST (the first batches would wait for that load)."""
    records: dict[str, dict[str, Any]] = {
        "fraud": {
            "transaction_id": "warm-up",
            "account_id": "acct-warm-up",
            "card_number": "4111111111111111",
            "amount": 10.0,
            "currency": "EUR",
            "merchant_id": "m-1",
            "merchant_category": "5411",
            "country": "FR",
            "channel": "pos",
        },
        "maintenance": {
            "device_id": "dev-warm-up",
            "temperature_c": 60.0,
            "vibration_mm_s": 2.0,
            "pressure_kpa": 300.0,
            "rpm": 1800.0,
        },
    }
    for model, record in records.items():
        answer = requests.post(
            app.host.url(f"/api/score/{model}"),
            json=record,
            headers={"x-functions-key": app.key},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text


def _ingested(data_dir: Path) -> bool:
    """Every event on the hub ingested: the consumer group's checkpoints at each partition's
    end (a batch's checkpoint moves after its rows landed and its states were written)."""
    with EventLog(event_log_path(data_dir)) as log:
        ends = log.last_sequence_numbers(EVENTS_HUB)
        saved = log.checkpoints(EVENTS_HUB, INGEST_CONSUMER_GROUP)
    return all(
        end < 0 or (p in saved and saved[p].sequence_number == end) for p, end in enumerate(ends)
    )


def _alerts_over_http(app: Platform) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    continuation: str | None = None
    while True:
        params = {"top": "500", **({"continuation": continuation} if continuation else {})}
        answer = requests.get(
            app.host.url("/api/alerts"),
            params=params,
            headers={"x-functions-key": app.key},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        page = answer.json()
        found += page["alerts"]
        continuation = page["continuation"]
        if not continuation:
            return found


def _landed_ids(settings: Settings) -> set[str]:
    return {
        row["event_id"]
        for contract in CONTRACTS
        for row in table_rows(settings.lake.uri, contract.table)
    }


def _found_landed(output: str) -> int:
    """The rows that the batches in a devhost's log found in bronze already (`IngestReport`)."""
    reports = (
        json.loads(line[line.index("{") :])
        for line in output.splitlines()
        if '"event": "ingest"' in line
    )
    return sum(int(report["already_landed"]) for report in reports)


def _kill_after_a_landing(host: DevhostProcess, settings: Settings, event_type: str) -> None:
    """SIGKILL as soon as a batch's rows of `event_type` have landed: in the window between
    a landing and the writing of the batch's alerts and feature states, which a redelivery
    must close, while the other partitions' batches are wherever they are."""
    log = Path(settings.lake.uri) / "bronze" / table_name(event_type) / "_delta_log"
    seen = set(log.glob("*.json"))
    deadline = time.monotonic() + 120
    while True:
        commits = set(log.glob("*.json")) - seen
        if any(b'"add"' in commit.read_bytes() for commit in commits):  # not CREATE TABLE
            host.kill()
            return
        seen |= commits
        assert time.monotonic() < deadline, "no landing to kill after"
        time.sleep(0.001)


@pytest.fixture(scope="module")
def crashed_stream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrashedStream]:
    root = tmp_path_factory.mktemp("models-crash")
    data_dir = root / "data"
    settings = load_settings({"PLATFORM_DATA_DIR": str(data_dir)})
    _train_champions(root / "history", settings)
    started: list[DevhostProcess] = []
    batches = _stream()
    try:
        app = _start(data_dir, started)
        _load_champions(app)
        before = Poster(app, batches, MOST_BEFORE_KILL)
        before.start()
        eventually(
            lambda: before.done >= KILL_AFTER and bool(_landed_ids(settings)),
            timeout=120,
            what="streaming",
        )
        _kill_after_a_landing(app.host, settings, "payment.transaction")
        before.join(30)
        assert not before.is_alive() and not before.refused, before.refused
        backlog = len(before.accepted - _landed_ids(settings))

        app = _start(data_dir, started)
        after = Poster(app, batches, AFTER_RESTART)
        after.run()
        assert after.done == AFTER_RESTART, after.refused
        eventually(lambda: _ingested(data_dir), timeout=180, what="every event ingested")
        alerts = _alerts_over_http(app)
        app.host.stop()
        yield CrashedStream(
            settings,
            before.posted | after.posted,
            before.accepted | after.accepted,
            alerts,
            backlog,
            _found_landed(app.host.output()),
        )
    finally:
        for host in started:
            host.stop()


# Reading what the run left ---------------------------------------------------------------


def _fields(event_type: str) -> tuple[str, ...]:
    contract = next(c for c in CONTRACTS if c.event_type == event_type)
    return tuple(contract.data.__struct_fields__)


def _bronze(stream: CrashedStream, event_type: str, *extra: str) -> list[dict[str, Any]]:
    """The contract's bronze rows as training reads them: once per event id, in event-time
    order, each with `t`, its hub position and `extra` columns."""
    columns = (*_fields(event_type), "partition", "sequence_number", *extra)
    return bronze_rows(Lake(stream.settings.lake.uri), Reads(), event_type, columns)


def _everything(container: DocumentContainer, query: Query) -> list[dict[str, Json]]:
    found: list[dict[str, Json]] = []
    continuation: str | None = None
    while True:
        page = container.query(query, continuation)
        found += page.documents
        continuation = page.continuation
        if continuation is None:
            return found


def _online_documents(stream: CrashedStream, feature_set: FeatureSet[Any]) -> dict[str, Any]:
    documents = open_documents(stream.settings.documents)
    try:
        container = documents.container(FEATURES_CONTAINER)
        query = Query(where=[Condition("/set", "=", feature_set.name)], cross_partition=True)
        return {str(d["id"]): d for d in _everything(container, query)}
    finally:
        documents.close()


def _champion(stream: CrashedStream, model: str) -> Champion:
    documents = open_documents(stream.settings.documents)
    try:
        registry = ModelRegistry(documents.container(MODELS_CONTAINER))
        artifacts = open_artifacts(stream.settings.lake)
        training = ModelTraining(Lake(stream.settings.lake.uri), registry, artifacts)
        champion = ChampionCache(Models(registry, artifacts, training), background=False)
        found = champion.get(model)
        assert found is not None
        return found
    finally:
        documents.close()


def _hub_events(stream: CrashedStream, hub: str) -> list[dict[str, Any]]:
    with EventLog(event_log_path(stream.data_dir)) as log:
        partitions = log.hubs().get(hub, 0)
        return [
            json.loads(event.body)
            for partition in range(partitions)
            for event in log.read(hub, partition, max_count=1_000_000)
        ]


# The tests ---------------------------------------------------------------------------------


def test_the_kill_fell_mid_batch_and_every_accepted_event_landed_once(
    crashed_stream: CrashedStream,
) -> None:
    """The crash the other tests rely on: accepted events were left to ingest, a batch in
    flight had landed rows that its redelivery found there, and every accepted event landed
    exactly once in the end."""
    ids = Counter(
        row["event_id"]
        for contract in CONTRACTS
        for row in table_rows(crashed_stream.settings.lake.uri, contract.table)
    )
    assert [event for event, n in ids.items() if n > 1] == []
    assert crashed_stream.accepted <= set(ids) <= crashed_stream.posted
    assert crashed_stream.backlog > 0, "the kill left accepted events to ingest"
    assert crashed_stream.found_landed > 0, "the kill fell inside a batch that had landed rows"


@pytest.mark.parametrize("feature_set", FEATURE_SETS, ids=lambda f: f.name)
def test_online_states_are_the_offline_fold_of_bronze(
    crashed_stream: CrashedStream, feature_set: FeatureSet[Any]
) -> None:
    """Each entity's state in the feature store is its bronze events folded once each with the
    same feature set (`new_state`, then `apply` in event-time order), its applied positions
    those of its last event: batches redelivered after the crash counted no event twice and
    lost none. The online path folds in arrival order, the offline one in event-time order;
    they agree because the online store promises exactly-once per hub position, not a
    reordering, and an entity's events reach one partition in the order they were posted,
    which (checked here) is their event-time order."""
    rows = _bronze(crashed_stream, feature_set.event_type)
    assert rows
    states: dict[str, msgspec.Struct] = {}
    applied: dict[str, dict[str, int]] = {}
    for row in rows:
        entity = str(row[feature_set.entity])
        positions = applied.setdefault(entity, {})
        partition = str(row["partition"])
        assert positions.keys() <= {partition}, f"{entity} arrived on two partitions"
        assert row["sequence_number"] > positions.get(partition, -1), f"{entity} out of order"
        positions[partition] = row["sequence_number"]
        feature_set.apply(states.setdefault(entity, feature_set.new_state()), row)

    online = _online_documents(crashed_stream, feature_set)
    assert set(online) == {state_id(feature_set, entity) for entity in states}
    for entity, state in states.items():
        document = online[state_id(feature_set, entity)]
        assert msgspec.convert(document["state"], feature_set.state_type) == state, entity
        assert document["applied"] == applied[entity], entity


@pytest.mark.parametrize("model", sorted(SCORED))
def test_bronze_scores_are_the_champions_scores_of_point_in_time_features(
    crashed_stream: CrashedStream, model: str
) -> None:
    """Each score in bronze is the champion's score of the event's point-in-time features (as
    training computes them), within 1e-6, and each alert's top features carry the event's
    point-in-time values: a batch redelivered after the crash either found its states written
    (its rows are skipped: bronze holds them already, with the first score) or folded again
    from the states it read the first time (the same features, the same score; the rows landed
    already keep theirs). A row lands unscored only if its process could not load the champion
    in time (`no_model`); never `already_scored`, since states are written only after their
    rows landed."""
    event_type = SCORED[model]
    champion = _champion(crashed_stream, model)
    rows = _bronze(crashed_stream, event_type, "score", "score_reason", "model_version")
    features = [found for _, found in point_in_time(BY_EVENT_TYPE[event_type], rows)]
    assert {row["score_reason"] for row in rows} <= {None, "no_model"}
    scored = [at for at, row in enumerate(rows) if row["score"] is not None]
    assert scored
    assert {rows[at]["model_version"] for at in scored} == {champion.version}
    matrix = np.asarray(
        [[features[at][name] for name in champion.features] for at in scored], dtype=np.float32
    )
    expected = champion.probabilities(matrix)
    landed = np.asarray([rows[at]["score"] for at in scored])
    worst = int(np.argmax(np.abs(landed - expected)))
    assert abs(landed[worst] - expected[worst]) <= SCORE_TOLERANCE, rows[scored[worst]]

    served = {row["event_id"]: found for row, found in zip(rows, features, strict=True)}
    for alert in crashed_stream.alerts:
        if alert["type"] == model:
            found = served[alert["event_id"]]
            for top in alert["top_features"]:
                assert top["value"] == float(np.float32(found[top["feature"]])), alert


def test_each_alerting_event_has_one_alert_announced_on_the_alerts_hub(
    crashed_stream: CrashedStream,
) -> None:
    """Every event whose bronze score is at or over its champion's threshold has exactly one
    alert (none lost, none for an event under it), marked published, and its CloudEvent is on
    the `alerts` hub. The hub holds an alert twice only if the crash fell between its send and
    its mark (`shared.models.alerts`): then as the same CloudEvent, and only for the alerts of
    one raise per partition (at most one batch per partition was in flight)."""
    over: dict[tuple[str, str], float] = {}
    for model, event_type in SCORED.items():
        threshold = _champion(crashed_stream, model).threshold
        for row in _bronze(crashed_stream, event_type, "score"):
            if row["score"] is not None and row["score"] >= threshold:
                over[(model, row["event_id"])] = row["score"]
    alerts = crashed_stream.alerts
    raised = Counter((a["type"], a["event_id"]) for a in alerts)
    assert [key for key, n in raised.items() if n > 1] == []
    lost = sorted(over.keys() - raised.keys())
    assert not lost, f"{len(lost)} of {len(over)} alerts lost, e.g. {lost[:3]}"
    assert sorted(raised.keys() - over.keys()) == [], "alerts without a score over the threshold"
    assert {model for model, _ in raised} == set(SCORED), "the stream holds events to alert on"
    assert all(a["published"] for a in alerts)
    for alert in alerts:
        landed = over[(alert["type"], alert["event_id"])]
        assert alert["score"] == pytest.approx(landed, abs=SCORE_TOLERANCE), alert

    announced = _hub_events(crashed_stream, ALERTS_HUB)
    by_id: dict[str, list[dict[str, Any]]] = {}
    for event in announced:
        by_id.setdefault(event["id"], []).append(event)
    assert by_id.keys() == {a["id"] for a in alerts}
    twice = {key: events for key, events in by_id.items() if len(events) > 1}
    assert all(events[0] == other for events in twice.values() for other in events)
    with EventLog(event_log_path(crashed_stream.data_dir)) as log:
        partitions = log.hubs()[EVENTS_HUB]
    assert len({events[0]["time"] for events in twice.values()}) <= partitions
