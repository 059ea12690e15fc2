"""The audit trail on the document store: records chained per hour in one batch each, safe
under concurrent writers, hours closed into checkpoints, and failing closed.

Each test runs on the embedded store and on the Cosmos DB adapter against the loopback Cosmos
DB server (`tests/fakes/cosmos.py`)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from embedded.audit.chain import HEAD, Head
from embedded.audit.checkpoints import checkpoints_path, read_checkpoints
from embedded.documents.model import Condition, DocumentStoreError, Query, Throttled
from shared.audit.checkpoints import FileCheckpoints
from shared.audit.events import Actor, AuditUnavailable
from shared.audit.fields import InvalidAuditEvent
from shared.audit.trail import AUDIT_CONTAINER, DocumentAuditTrail
from shared.audit.verify import verify_all, verify_partitions
from shared.documents.cosmos import CosmosContainer, CosmosDatabase
from shared.documents.port import BatchOperation, DocumentContainer, Json
from shared.privacy.card_numbers import card_number_spans
from tests.auditdata import HOUR, StepClock, event
from tests.fakes.cosmos import FakeCosmos, FakeCredential, container_on

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]


@pytest.fixture(params=["embedded", "cosmos"])
def container(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DocumentContainer]:
    with container_on(request.param, AUDIT_CONTAINER, tmp_path) as found:
        yield found


@pytest.fixture
def checkpoints(tmp_path: Path) -> FileCheckpoints:
    return FileCheckpoints(checkpoints_path(tmp_path / "data"))


def records(container: DocumentContainer) -> list[dict[str, Any]]:
    query = Query(where=[Condition("/type", "=", "record")], cross_partition=True, page_size=1000)
    found: list[dict[str, Any]] = []
    continuation = None
    while True:
        page = container.query(query, continuation)
        found.extend(page.documents)
        if page.continuation is None:
            return sorted(found, key=lambda r: (r["partition"], r["seq"]))
        continuation = page.continuation


def test_appends_chain_one_record_per_batch(
    container: DocumentContainer, checkpoints: FileCheckpoints
) -> None:
    trail = DocumentAuditTrail(container, clock=StepClock(), checkpoints=checkpoints)
    for n in range(5):
        trail.append(event(reason=f"call {n}"))
    stored = records(container)
    assert [r["seq"] for r in stored] == [1, 2, 3, 4, 5]
    assert [r["reason"] for r in stored] == [f"call {n}" for n in range(5)]
    assert {r["partition"] for r in stored} == {"2026-12-07T12"}
    first = stored[0]
    assert first["time"] == "2026-12-07T12:00:00.001000Z"
    assert first["actor"] == {
        "kind": "user",
        "id": "00000000-0000-0000-0000-0000000000aa",
        "tenant": "tenant-1",
    }
    assert first["status"] == 200 and first["outcome"] == "success"
    head = Head.from_document(container.read(HEAD, "2026-12-07T12"))
    assert (head.last_seq, head.last_hash, head.state) == (5, stored[-1]["hash"], "open")
    assert verify_all(container, checkpoints) == []


def test_each_append_is_one_batch_of_the_head_and_the_record(
    container: DocumentContainer, checkpoints: FileCheckpoints
) -> None:
    seen: list[list[str]] = []

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(container, name)

        def batch(self, key: Json, operations: Sequence[BatchOperation]) -> Any:
            seen.append([op.kind for op in operations])
            return container.batch(key, operations)

        def read(self, id: str, partition_key: Json) -> dict[str, Json]:
            seen.append(["read"])
            return container.read(id, partition_key)

    trail = DocumentAuditTrail(Counting(), clock=StepClock(), checkpoints=checkpoints)  # type: ignore[arg-type]
    for _ in range(3):
        trail.append(event())
    assert seen == [["read"], ["create", "create"], ["replace", "create"], ["replace", "create"]]


@pytest.mark.parametrize("shared_trail", [True, False], ids=["one-trail", "trail-per-thread"])
def test_concurrent_writers_make_one_chain_per_hour_without_gaps(
    container: DocumentContainer, checkpoints: FileCheckpoints, shared_trail: bool
) -> None:
    threads, per_thread = 6, (8 if isinstance(container, CosmosContainer) else 25)
    step = 7400 / (threads * per_thread)  # the appends span hours
    clock = StepClock(start=HOUR + 3600 - 200, step=step)
    one = DocumentAuditTrail(container, clock=clock, checkpoints=checkpoints)
    errors: list[BaseException] = []

    def write(number: int) -> None:
        trail = (
            one
            if shared_trail
            else DocumentAuditTrail(container, clock=clock, checkpoints=checkpoints)
        )
        try:
            for n in range(per_thread):
                trail.append(event(reason=f"writer {number} call {n}"))
        except BaseException as error:  # noqa: B036 - reported below
            errors.append(error)

    workers = [threading.Thread(target=write, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    stored = records(container)
    assert sorted(r["reason"] for r in stored) == sorted(
        f"writer {w} call {n}" for w in range(threads) for n in range(per_thread)
    )
    by_hour: dict[str, list[int]] = {}
    for record in stored:
        by_hour.setdefault(record["partition"], []).append(record["seq"])
    assert len(by_hour) >= 2  # group commits read the clock once per group
    assert all(seqs == list(range(1, len(seqs) + 1)) for seqs in by_hour.values())
    results = verify_partitions(container, checkpoints)
    assert [r.problem for r in results] == [None] * len(results)
    closed = read_checkpoints(checkpoints.path)
    assert set(closed) == set(sorted(by_hour)[:-1])  # every hour but the last is checkpointed


def test_the_first_record_of_an_hour_closes_the_one_before(
    container: DocumentContainer, checkpoints: FileCheckpoints
) -> None:
    clock = StepClock(start=HOUR + 3590, step=1.0)
    trail = DocumentAuditTrail(container, clock=clock, checkpoints=checkpoints)
    for _ in range(3):
        trail.append(event())
    assert read_checkpoints(checkpoints.path) == {}
    clock.now = HOUR + 3600
    trail.append(event())
    closed = read_checkpoints(checkpoints.path)
    stored = records(container)
    assert list(closed) == ["2026-12-07T12"]
    assert (closed["2026-12-07T12"].last_seq, closed["2026-12-07T12"].last_hash) == (
        3,
        stored[2]["hash"],
    )
    head = Head.from_document(container.read(HEAD, "2026-12-07T12"))
    assert (head.state, head.next) == ("checkpointed", "2026-12-07T13")
    lines = checkpoints.path.read_text().splitlines()
    assert len(lines) == 1 and set(json.loads(lines[0])) == {
        "partition",
        "last_seq",
        "last_hash",
        "written_at",
    }
    assert verify_all(container, checkpoints) == []


def test_a_writer_whose_clock_lags_goes_on_in_the_open_hour(
    container: DocumentContainer, checkpoints: FileCheckpoints
) -> None:
    ahead = DocumentAuditTrail(
        container, clock=StepClock(start=HOUR + 3600), checkpoints=checkpoints
    )
    behind = DocumentAuditTrail(
        container, clock=StepClock(start=HOUR + 3000), checkpoints=checkpoints
    )
    behind.append(event(reason="before"))
    ahead.append(event(reason="closes 12"))
    behind.append(event(reason="late"))
    stored = records(container)
    assert [(r["partition"], r["seq"], r["reason"]) for r in stored] == [
        ("2026-12-07T12", 1, "before"),
        ("2026-12-07T13", 1, "closes 12"),
        ("2026-12-07T13", 2, "late"),
    ]
    assert stored[2]["time"].startswith("2026-12-07T12:50")  # its own clock's time, kept
    assert verify_all(container, checkpoints) == []


def test_close_hours_for_the_daily_timer_writes_each_checkpoint_once(
    container: DocumentContainer, checkpoints: FileCheckpoints
) -> None:
    trail = DocumentAuditTrail(container, clock=StepClock(), checkpoints=checkpoints)
    trail.append(event())
    assert trail.close_hours(HOUR + 1800) == []  # the hour is still open
    [written] = trail.close_hours(HOUR + 7200)
    assert (written.partition, written.last_seq) == ("2026-12-07T12", 1)
    assert trail.close_hours(HOUR + 7200) == []
    assert len(checkpoints.path.read_text().splitlines()) == 1


def test_close_hours_finishes_a_close_that_stopped_half_way(
    container: DocumentContainer, checkpoints: FileCheckpoints
) -> None:
    trail = DocumentAuditTrail(container, clock=StepClock(), checkpoints=checkpoints)
    trail.append(event())
    document = container.read(HEAD, "2026-12-07T12")
    head = Head.from_document(document)
    sealed = Head(head.partition, head.last_seq, head.last_hash, "closed", "2026-12-07T13")
    container.replace(sealed.document(), if_match=document["_etag"])  # sealed, then a crash
    [written] = trail.close_hours(HOUR + 3700)
    assert written.last_hash == head.last_hash
    assert Head.from_document(container.read(HEAD, "2026-12-07T12")).state == "checkpointed"


class Failing:
    """The container, until `error` is set: then every call raises it."""

    def __init__(self, container: DocumentContainer) -> None:
        self.container = container
        self.error: Exception | None = None

    def __getattr__(self, name: str) -> Callable[..., Any]:
        operation = getattr(self.container, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.error is not None:
                raise self.error
            return operation(*args, **kwargs)

        return call


@pytest.mark.parametrize(
    "error",
    [
        Throttled("busy", 1.0),
        DocumentStoreError("Cosmos DB answered 503"),
        OSError("disk I/O error"),
        ConnectionError("connection refused"),
    ],
)
def test_a_store_that_fails_makes_the_trail_unavailable(
    container: DocumentContainer, checkpoints: FileCheckpoints, error: Exception
) -> None:
    failing = Failing(container)
    trail = DocumentAuditTrail(failing, clock=StepClock(), checkpoints=checkpoints)  # type: ignore[arg-type]
    trail.append(event())
    failing.error = error
    with pytest.raises(AuditUnavailable) as raised:
        trail.append(event())
    assert raised.value.__cause__ is error
    with pytest.raises(AuditUnavailable):
        trail.close_hours(HOUR + 7200)
    failing.error = None
    trail.append(event())  # and it recovers when the store does
    assert [r["seq"] for r in records(container)] == [1, 2]


def test_a_throttled_cosmos_db_makes_the_trail_unavailable(
    tmp_path: Path, checkpoints: FileCheckpoints
) -> None:
    with FakeCosmos(tmp_path / "cosmos.sqlite3", tmp_path / "tls") as fake:
        fake.declare(AUDIT_CONTAINER)
        database = CosmosDatabase(fake.url, "platform", FakeCredential(), throttle_retries=1)
        trail = DocumentAuditTrail(
            database.container(AUDIT_CONTAINER), clock=StepClock(), checkpoints=checkpoints
        )
        fake.throttle(10, retry_after_ms=1)
        with pytest.raises(AuditUnavailable) as raised:
            trail.append(event())
        assert isinstance(raised.value.__cause__, Throttled)
        database.close()


def test_a_chain_contended_past_the_attempts_is_unavailable(
    container: DocumentContainer, checkpoints: FileCheckpoints
) -> None:
    rival = DocumentAuditTrail(container, clock=StepClock(), checkpoints=checkpoints)
    rival.append(event())

    class Racing:
        """Another writer moves the head before every batch of ours."""

        def __getattr__(self, name: str) -> Any:
            return getattr(container, name)

        def batch(self, key: Json, operations: Sequence[BatchOperation]) -> Any:
            rival.append(event(reason="the rival's"))
            return container.batch(key, operations)

    naps: list[float] = []
    trail = DocumentAuditTrail(
        Racing(),  # type: ignore[arg-type]
        clock=StepClock(),
        checkpoints=checkpoints,
        sleep=naps.append,
    )
    with pytest.raises(AuditUnavailable, match="contended for 50 attempts"):
        trail.append(event())
    assert len(naps) == 49 and max(naps) <= 0.05
    assert verify_all(container, checkpoints) == []


SECRETS = (
    "4111 1111 1111 1111",
    "5500-0000-0000-0004",
    "378282246310005",
    "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJvaWQiOiJ4In0.c2lnbmF0dXJl",
)


def test_records_never_hold_card_numbers_tokens_or_long_strings(
    container: DocumentContainer, checkpoints: FileCheckpoints
) -> None:
    trail = DocumentAuditTrail(container, clock=StepClock(), checkpoints=checkpoints)
    for secret in SECRETS:
        trail.append(
            event(
                action=f"authn_token_invalid {secret}",
                actor=Actor("app", secret, secret),
                resource=f"POST /api/events?code={secret.replace(' ', '')}&x=1",
                reason=f"Bearer {secret}; card {secret}\nforged line",
                client=secret,
            )
        )
    trail.append(event(reason="x" * 10_000, resource="y" * 10_000, client="z" * 500))
    trail.append(event(traceparent="not-a-traceparent", status=9999))
    stored = records(container)
    for record in stored:
        text = json.dumps(record, ensure_ascii=False)
        assert card_number_spans(text) == [], text
        for secret in SECRETS:
            assert secret not in text
        assert "\n" not in record["reason"]
    assert stored[0]["resource"] == "POST /api/events?code=[redacted]&x=1"
    assert stored[0]["reason"].startswith("Bearer [token]")
    assert "card [card] forged line" in stored[0]["reason"]
    long = stored[len(SECRETS)]
    assert (len(long["reason"]), len(long["resource"]), len(long["client"])) == (256, 256, 64)
    assert (stored[-1]["traceparent"], stored[-1]["status"]) == ("", None)
    assert verify_all(container, checkpoints) == []


def test_an_outcome_outside_the_vocabulary_is_refused_before_the_store(
    container: DocumentContainer, checkpoints: FileCheckpoints
) -> None:
    trail = DocumentAuditTrail(container, clock=StepClock(), checkpoints=checkpoints)
    with pytest.raises(InvalidAuditEvent, match="success, failure, denied"):
        trail.append(event(outcome="maybe"))
    assert records(container) == []


def test_submitted_records_are_chained_in_order_and_a_bad_one_is_counted_not_kept(
    container: DocumentContainer, checkpoints: FileCheckpoints
) -> None:
    trail = DocumentAuditTrail(container, clock=StepClock(), checkpoints=checkpoints)
    for n in range(150):  # more than one batch holds
        trail.submit(event(reason=f"r{n}"))
        if n == 70:
            trail.submit(event(outcome="maybe"))  # the writer finds it out
    trail.append(event(reason="privileged"))  # committed at once, after what came before
    assert trail.flush()
    stored = records(container)
    assert [r["reason"] for r in stored] == [f"r{n}" for n in range(150)] + ["privileged"]
    assert [r["seq"] for r in stored] == list(range(1, 152))
    assert all(r["id"] == f"{r['partition']}.{r['seq']:09d}" for r in stored)
    assert trail.misses == 1
    assert verify_all(container, checkpoints) == []


def test_a_scrubbed_string_that_held_a_secret_is_not_remembered() -> None:
    from shared.audit import fields

    card = "4111 1111 1111 1111"
    assert fields.clean(f"GET /api/x/{card}", 256) == "GET /api/x/[card]"
    assert fields.clean("GET /api/x/plain", 256) == "GET /api/x/plain"
    remembered = {text for text, _ in fields._UNCHANGED}
    assert "GET /api/x/plain" in remembered
    assert not any("4111" in text for text in remembered)
    assert fields.clean(f"GET /api/x/{card}", 256) == "GET /api/x/[card]"  # scrubbed again
