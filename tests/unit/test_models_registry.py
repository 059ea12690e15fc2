"""The model registry on the document store: versions numbered without gaps under concurrent
creators, aliases, tags, validation status, paging, and every outside input checked.

Each test that touches a container runs on the embedded store and on the Cosmos DB adapter
against the loopback Cosmos DB server (`tests/fakes/cosmos.py`)."""

from __future__ import annotations

import dataclasses
import math
import re
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedded.documents.store import DocumentStore
from shared.documents.port import (
    BatchOperation,
    DocumentContainer,
    Json,
    PreconditionFailed,
    Query,
)
from shared.models.registry import (
    MAX_ATTEMPTS,
    MODEL_ID,
    MODELS_CONTAINER,
    AliasNotFound,
    InvalidRegistryInput,
    ModelNotFound,
    ModelRegistry,
    ModelVersion,
    ModelVersionNotFound,
    RegisteredModel,
    RegistryContended,
    RegistryError,
    VersionExists,
    version_id,
)
from tests.fakes.cosmos import container_on

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

NOW = datetime(2027, 1, 15, 8, tzinfo=UTC).timestamp()
SYSTEM = {"_etag", "_ts", "_lsn", "_rid", "_self", "_attachments"}


@pytest.fixture(params=["embedded", "cosmos"])
def container(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DocumentContainer]:
    with container_on(request.param, MODELS_CONTAINER, tmp_path) as found:
        yield found


@pytest.fixture
def registry(container: DocumentContainer) -> ModelRegistry:
    return ModelRegistry(container, clock=lambda: NOW)


@pytest.fixture(scope="module")
def empty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelRegistry]:
    """A registry on an embedded store with no models, for the validators' properties."""
    store = DocumentStore(tmp_path_factory.mktemp("empty") / "platform.sqlite3")
    yield ModelRegistry(store.container(MODELS_CONTAINER))
    store.close()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelRegistry]:
    """A registry on an embedded store that properties may write to."""
    store = DocumentStore(tmp_path_factory.mktemp("scratch") / "platform.sqlite3")
    yield ModelRegistry(store.container(MODELS_CONTAINER))
    store.close()


def register(registry: ModelRegistry, name: str = "fraud", **changes: Any) -> ModelVersion:
    arguments: dict[str, Any] = {
        "source": f"file:///lake/models/{name}/next",
        "run_id": "run-1",
        "metrics": {"auc": 0.91, "pr_auc": 0.5},
        "params": {"max_depth": "6"},
        "signature": {
            "inputs": [{"name": "amount", "type": "double"}],
            "outputs": [{"name": "score", "type": "double"}],
        },
        "input_example": {"amount": [12.5, 99.0]},
        "training_data": {"silver.transactions": 7},
        "code_version": "abc123",
        **changes,
    }
    return registry.create_version(name, **arguments)


def stored(container: DocumentContainer, name: str) -> list[dict[str, Any]]:
    page = container.query(Query(partition_key=name, page_size=1000))
    return sorted(page.documents, key=lambda document: str(document["id"]))


# Numbering and concurrency


def test_versions_are_numbered_from_one_and_read_back_whole(registry: ModelRegistry) -> None:
    created = [register(registry, run_id=f"run-{n}") for n in range(3)]
    assert [v.version for v in created] == [1, 2, 3]
    first = registry.get_version("fraud", 1)
    assert first == created[0]
    assert first == ModelVersion(
        name="fraud",
        version=1,
        created_at="2027-01-15T08:00:00.000000Z",
        status="READY",
        source="file:///lake/models/fraud/next",
        run_id="run-0",
        metrics={"auc": 0.91, "pr_auc": 0.5},
        params={"max_depth": "6"},
        tags={},
        signature={
            "inputs": [{"name": "amount", "type": "double"}],
            "outputs": [{"name": "score", "type": "double"}],
        },
        input_example={"amount": [12.5, 99.0]},
        training_data={"silver.transactions": 7},
        code_version="abc123",
    )
    assert (first.validation_status, first.validation_reasons, first.description) == (
        "none",
        (),
        "",
    )
    model = registry.get_model("fraud")
    assert (model.name, model.latest_version, model.aliases, model.tags) == ("fraud", 3, {}, {})
    assert model.created_at == model.updated_at == "2027-01-15T08:00:00.000000Z"


def test_metrics_come_back_as_floats(registry: ModelRegistry) -> None:
    register(registry, metrics={"auc": 1, "loss": 2.0})
    metrics = registry.get_version("fraud", 1).metrics
    assert metrics == {"auc": 1.0, "loss": 2.0}
    assert all(type(value) is float for value in metrics.values())


def test_the_store_s_system_properties_never_leak(
    registry: ModelRegistry, container: DocumentContainer
) -> None:
    register(registry)
    assert SYSTEM & set(stored(container, "fraud")[0])  # the store has them ...
    version = registry.get_version("fraud", 1)
    model = registry.get_model("fraud")
    returned: list[ModelVersion | RegisteredModel] = [version, model]
    returned += [*registry.list_models(), *registry.list_versions("fraud")]
    for value in returned:
        assert not any(key.startswith("_") for key in dataclasses.asdict(value))  # ... we don't
    assert not SYSTEM & set(version.signature)


def test_documents_are_one_per_model_and_one_per_version(
    registry: ModelRegistry, container: DocumentContainer
) -> None:
    register(registry)
    register(registry)
    documents = stored(container, "fraud")
    assert [(d["id"], d["type"], d["model"]) for d in documents] == [
        (MODEL_ID, "model", "fraud"),
        ("v000001", "version", "fraud"),
        ("v000002", "version", "fraud"),
    ]
    assert version_id(12) == "v000012"


def test_each_version_is_one_batch_of_the_model_and_the_version(
    container: DocumentContainer,
) -> None:
    seen: list[list[str]] = []

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(container, name)

        def batch(self, key: Json, operations: Sequence[BatchOperation]) -> Any:
            seen.append([op.kind for op in operations])
            assert key == "fraud"
            return container.batch(key, operations)

    registry = ModelRegistry(Counting())  # type: ignore[arg-type]
    for _ in range(3):
        register(registry)
    assert seen == [["create", "create"], ["replace", "create"], ["replace", "create"]]


def test_concurrent_creators_get_every_number_exactly_once(container: DocumentContainer) -> None:
    threads, per_thread = 4, 5
    errors: list[BaseException] = []
    created: list[ModelVersion] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def create(number: int) -> None:
        registry = ModelRegistry(container)  # an instance each, as separate hosts have
        start.wait()
        try:
            for n in range(per_thread):
                version = register(registry, run_id=f"writer-{number}-{n}")
                with lock:
                    created.append(version)
        except BaseException as error:  # noqa: B036 - reported below
            errors.append(error)

    workers = [threading.Thread(target=create, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    total = threads * per_thread
    assert sorted(v.version for v in created) == list(range(1, total + 1))
    registry = ModelRegistry(container)
    listed = registry.list_versions("fraud")
    assert [v.version for v in listed] == list(range(total, 0, -1))
    assert {v.version: v.run_id for v in listed} == {v.version: v.run_id for v in created}
    assert registry.get_model("fraud").latest_version == total


def test_a_creator_that_keeps_losing_the_race_gives_up(container: DocumentContainer) -> None:
    rival = ModelRegistry(container)
    register(rival)

    class Racing:
        """Another creator registers a version before every batch of ours."""

        def __getattr__(self, name: str) -> Any:
            return getattr(container, name)

        def batch(self, key: Json, operations: Sequence[BatchOperation]) -> Any:
            register(rival, run_id="the rival's")
            return container.batch(key, operations)

    naps: list[float] = []
    registry = ModelRegistry(Racing(), sleep=naps.append)  # type: ignore[arg-type]
    with pytest.raises(RegistryContended, match=f"{MAX_ATTEMPTS} attempts"):
        register(registry, run_id="ours")
    assert len(naps) == MAX_ATTEMPTS - 1 and max(naps) <= 0.05
    versions = rival.list_versions("fraud")
    assert [v.version for v in versions] == list(range(MAX_ATTEMPTS + 1, 0, -1))
    assert "ours" not in {v.run_id for v in versions}


def test_a_creator_beaten_to_the_first_version_takes_the_second(
    container: DocumentContainer,
) -> None:
    rival = ModelRegistry(container)
    raced: list[bool] = []

    class Racing:
        """Another creator registers the model between our read and our first batch."""

        def __getattr__(self, name: str) -> Any:
            return getattr(container, name)

        def batch(self, key: Json, operations: Sequence[BatchOperation]) -> Any:
            if not raced:
                raced.append(True)
                register(rival, run_id="the rival's")
            return container.batch(key, operations)

    registry = ModelRegistry(Racing(), sleep=lambda _: None)  # type: ignore[arg-type]
    ours = register(registry, run_id="ours")
    assert ours.version == 2
    versions = rival.list_versions("fraud")
    assert [(v.version, v.run_id) for v in versions] == [(2, "ours"), (1, "the rival's")]


# Immutability


def test_create_version_never_overwrites_a_version_document(
    registry: ModelRegistry, container: DocumentContainer
) -> None:
    register(registry)
    squatter = {"id": version_id(2), "model": "fraud", "type": "version", "run_id": "older"}
    container.create(squatter)
    with pytest.raises(VersionExists, match="version 2"):
        register(registry, run_id="newer")
    assert container.read(version_id(2), "fraud")["run_id"] == "older"
    assert registry.get_model("fraud").latest_version == 1


def test_a_stray_first_version_is_not_overwritten_either(
    registry: ModelRegistry, container: DocumentContainer
) -> None:
    container.create({"id": version_id(1), "model": "fraud", "type": "version", "run_id": "x"})
    with pytest.raises(VersionExists):
        register(registry)
    with pytest.raises(ModelNotFound):
        registry.get_model("fraud")
    assert container.read(version_id(1), "fraud")["run_id"] == "x"


def test_updates_leave_the_rest_of_a_version_alone(registry: ModelRegistry) -> None:
    original = register(registry)
    registry.set_version_tag("fraud", 1, "owner", "risk-team")
    registry.set_version_description("fraud", 1, "the first gradient boosted model")
    updated = registry.set_validation_status("fraud", 1, "passed", ["auc 0.91 >= 0.90"])
    assert updated == registry.get_version("fraud", 1)
    assert updated == dataclasses.replace(
        original,
        tags={"owner": "risk-team"},
        description="the first gradient boosted model",
        validation_status="passed",
        validation_reasons=("auc 0.91 >= 0.90",),
    )


# Aliases


def test_aliases_are_set_moved_and_deleted(registry: ModelRegistry) -> None:
    for _ in range(3):
        register(registry)
    registry.set_alias("fraud", "champion", 1)
    registry.set_alias("fraud", "challenger", 2)
    assert registry.get_version_by_alias("fraud", "champion").version == 1
    model = registry.set_alias("fraud", "champion", 3)  # moved
    assert model.aliases == {"champion": 3, "challenger": 2}
    assert registry.get_model("fraud").aliases == {"champion": 3, "challenger": 2}
    assert registry.get_version_by_alias("fraud", "champion").version == 3
    assert registry.delete_alias("fraud", "challenger").aliases == {"champion": 3}
    with pytest.raises(AliasNotFound, match="challenger"):
        registry.get_version_by_alias("fraud", "challenger")
    assert registry.delete_alias("fraud", "challenger").aliases == {"champion": 3}  # no-op
    assert registry.get_model("fraud").latest_version == 3


def test_an_alias_to_a_missing_version_or_model_is_refused(registry: ModelRegistry) -> None:
    register(registry)
    registry.set_alias("fraud", "champion", 1)
    with pytest.raises(ModelVersionNotFound, match="version 2"):
        registry.set_alias("fraud", "champion", 2)
    assert registry.get_model("fraud").aliases == {"champion": 1}
    with pytest.raises(ModelNotFound):
        registry.set_alias("churn", "champion", 1)
    with pytest.raises(ModelNotFound):
        registry.delete_alias("churn", "champion")
    with pytest.raises(ModelNotFound):
        registry.get_version_by_alias("churn", "champion")


@pytest.mark.parametrize(
    "alias",
    ["", "v12", "V3", "12", "latest", "LATEST", "1abc", "_x", "a b", "a.b", "x" * 65, "ok\n", 3],
)
def test_alias_names_are_validated(registry: ModelRegistry, alias: Any) -> None:
    register(registry)
    with pytest.raises(InvalidRegistryInput, match="alias"):
        registry.set_alias("fraud", alias, 1)
    with pytest.raises(InvalidRegistryInput):
        registry.get_version_by_alias("fraud", alias)
    with pytest.raises(InvalidRegistryInput):
        registry.delete_alias("fraud", alias)
    assert registry.get_model("fraud").aliases == {}


@pytest.mark.parametrize("alias", ["champion", "Challenger_2", "a", "v", "v1a", "x" * 64])
def test_alias_names_that_are_fine(registry: ModelRegistry, alias: str) -> None:
    register(registry)
    registry.set_alias("fraud", alias, 1)
    assert registry.get_version_by_alias("fraud", alias).version == 1


# Listing


def test_models_are_listed_by_name_across_pages(container: DocumentContainer) -> None:
    queries: list[str | None] = []

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(container, name)

        def query(self, query: Query, continuation: str | None = None) -> Any:
            queries.append(continuation)
            return container.query(query, continuation)

    registry = ModelRegistry(Counting(), page_size=2)  # type: ignore[arg-type]
    names = ["zeta", "alpha", "mid", "beta", "omega"]
    for name in names:
        register(registry, name)
    register(registry, "beta")  # versions are not models
    assert [m.name for m in registry.list_models()] == sorted(names)
    assert len(queries) == 3 and queries[0] is None
    assert {m.name: m.latest_version for m in registry.list_models()}["beta"] == 2


def test_versions_are_listed_newest_first_across_pages(container: DocumentContainer) -> None:
    registry = ModelRegistry(container, page_size=3)
    for n in range(7):
        register(registry, run_id=f"run-{n}")
    register(registry, "other")
    versions = registry.list_versions("fraud")
    assert [v.version for v in versions] == [7, 6, 5, 4, 3, 2, 1]
    assert [v.run_id for v in versions] == [f"run-{n}" for n in range(6, -1, -1)]
    assert [v.version for v in registry.list_versions("other")] == [1]


def test_an_empty_registry_lists_nothing(registry: ModelRegistry) -> None:
    assert registry.list_models() == []
    with pytest.raises(ModelNotFound):
        registry.list_versions("fraud")


# Tags and validation status


def test_model_and_version_tags_are_set_and_overwritten(registry: ModelRegistry) -> None:
    register(registry, tags={"framework": "lightgbm"})
    registry.set_version_tag("fraud", 1, "stage", "candidate")
    registry.set_version_tag("fraud", 1, "stage", "reviewed")
    assert registry.get_version("fraud", 1).tags == {"framework": "lightgbm", "stage": "reviewed"}
    registry.set_model_tag("fraud", "team", "risk")
    registry.set_model_description("fraud", "card fraud scores")
    model = registry.get_model("fraud")
    assert (model.tags, model.description) == ({"team": "risk"}, "card fraud scores")
    with pytest.raises(ModelVersionNotFound):
        registry.set_version_tag("fraud", 2, "stage", "x")
    with pytest.raises(ModelNotFound):
        registry.set_model_tag("churn", "team", "x")


def test_validation_status_moves_through_its_vocabulary(registry: ModelRegistry) -> None:
    register(registry)
    assert registry.get_version("fraud", 1).validation_status == "none"
    registry.set_validation_status("fraud", 1, "pending", [])
    rejected = registry.set_validation_status(
        "fraud", 1, "rejected", ["auc 0.80 < champion 0.91", "latency p99 12 ms > 10 ms"]
    )
    assert registry.get_version("fraud", 1) == rejected
    assert rejected.validation_status == "rejected"
    assert rejected.validation_reasons == ("auc 0.80 < champion 0.91", "latency p99 12 ms > 10 ms")
    for status, reasons in [
        ("approved", []),
        ("PASSED", []),
        ("passed", "one reason, not a list"),
        ("passed", [1]),
        ("passed", ["x" * 1001]),
        ("passed", ["x"] * 101),
    ]:
        with pytest.raises(InvalidRegistryInput):
            registry.set_validation_status("fraud", 1, status, reasons)  # type: ignore[arg-type]
    assert registry.get_version("fraud", 1) == rejected


def test_an_update_that_loses_a_race_reads_again_and_keeps_both(
    container: DocumentContainer,
) -> None:
    rival = ModelRegistry(container)
    register(rival)
    raced: list[bool] = []

    class Racing:
        """Another writer tags the version once, between our read and our replace."""

        def __getattr__(self, name: str) -> Any:
            return getattr(container, name)

        def replace(self, document: Any, if_match: str | None = None) -> Any:
            if not raced:
                raced.append(True)
                rival.set_version_tag("fraud", 1, "rival", "first")
            return container.replace(document, if_match=if_match)

    registry = ModelRegistry(Racing(), sleep=lambda _: None)  # type: ignore[arg-type]
    registry.set_version_tag("fraud", 1, "ours", "second")
    assert registry.get_version("fraud", 1).tags == {"rival": "first", "ours": "second"}


def test_an_update_contended_past_the_attempts_gives_up(container: DocumentContainer) -> None:
    register(ModelRegistry(container))

    class Stale:
        def __getattr__(self, name: str) -> Any:
            return getattr(container, name)

        def replace(self, document: Any, if_match: str | None = None) -> Any:
            raise PreconditionFailed("someone else wrote it")

    naps: list[float] = []
    registry = ModelRegistry(Stale(), sleep=naps.append)  # type: ignore[arg-type]
    with pytest.raises(RegistryContended):
        registry.set_alias("fraud", "champion", 1)
    assert len(naps) == MAX_ATTEMPTS - 1


# Inputs from outside


def test_missing_models_and_versions_are_their_own_errors(registry: ModelRegistry) -> None:
    with pytest.raises(ModelNotFound, match="churn"):
        registry.get_model("churn")
    register(registry)
    with pytest.raises(ModelVersionNotFound, match="version 2"):
        registry.get_version("fraud", 2)
    assert issubclass(ModelNotFound, LookupError) and issubclass(ModelVersionNotFound, LookupError)
    assert issubclass(AliasNotFound, LookupError)
    assert issubclass(InvalidRegistryInput, ValueError)
    assert all(
        issubclass(error, RegistryError)
        for error in (ModelNotFound, ModelVersionNotFound, AliasNotFound, InvalidRegistryInput)
    )


@pytest.mark.parametrize("version", [0, -1, True, False, "1", 1.0, None])
def test_version_numbers_are_positive_integers(registry: ModelRegistry, version: Any) -> None:
    register(registry)
    with pytest.raises(InvalidRegistryInput, match="version"):
        registry.get_version("fraud", version)
    with pytest.raises(InvalidRegistryInput, match="version"):
        registry.set_alias("fraud", "champion", version)
    with pytest.raises(InvalidRegistryInput, match="version"):
        registry.set_version_tag("fraud", version, "k", "v")


BAD_INPUTS: list[tuple[str, dict[str, Any]]] = [
    ("model name", {"name": "Fraud"}),
    ("model name", {"name": ""}),
    ("model name", {"name": "1fraud"}),
    ("model name", {"name": "fraud/1"}),
    ("model name", {"name": "f" * 65}),
    ("model name", {"name": 7}),
    ("source", {"source": ""}),
    ("source", {"source": None}),
    ("source", {"source": "s" * 5001}),
    ("run_id", {"run_id": 3}),
    ("metrics", {"metrics": {"auc": math.nan}}),
    ("metrics", {"metrics": {"auc": math.inf}}),
    ("metrics", {"metrics": {"auc": -math.inf}}),
    ("metrics", {"metrics": {"auc": "0.9"}}),
    ("metrics", {"metrics": {"auc": True}}),
    ("metrics", {"metrics": {"auc": 10**400}}),
    ("metrics", {"metrics": {"": 1.0}}),
    ("metrics", {"metrics": {"k" * 251: 1.0}}),
    ("metrics", {"metrics": [("auc", 0.9)]}),
    ("params", {"params": {"depth": 6}}),
    ("params", {"params": {"depth": "x" * 6001}}),
    ("tags", {"tags": {"note": "x" * 5001}}),
    ("tags", {"tags": {1: "a"}}),
    ("signature", {"signature": {"inputs": [], "extra": 1}}),
    ("signature", {"signature": "inputs"}),
    ("signature", {"signature": {"inputs": math.nan}}),
    ("input_example", {"input_example": object()}),
    ("input_example", {"input_example": {"amount": math.nan}}),
    ("input_example", {"input_example": ["x" * 1024] * 300}),
    ("training_data", {"training_data": {"silver.transactions": -1}}),
    ("training_data", {"training_data": {"silver.transactions": True}}),
    ("training_data", {"training_data": {"silver.transactions": 1.5}}),
    ("code_version", {"code_version": "c" * 5001}),
    ("description", {"description": "d" * 5001}),
]


@pytest.mark.parametrize(("field", "changes"), BAD_INPUTS, ids=[f for f, _ in BAD_INPUTS])
def test_every_invalid_input_is_refused_before_the_store(
    registry: ModelRegistry, container: DocumentContainer, field: str, changes: dict[str, Any]
) -> None:
    arguments = dict(changes)  # the parameter is shared by both adapters' runs
    name = arguments.pop("name", "fraud")
    with pytest.raises(InvalidRegistryInput, match=re.escape(field)) as raised:
        register(registry, name, **arguments)
    assert len(str(raised.value)) < 160  # names the field, never echoes the value
    assert container.query(Query(cross_partition=True)).documents == []


def test_a_version_past_the_document_size_is_refused(
    registry: ModelRegistry, container: DocumentContainer
) -> None:
    params = {f"p{n}": "x" * 6000 for n in range(400)}
    with pytest.raises(InvalidRegistryInput, match="bytes"):
        register(registry, params=params)
    assert container.query(Query(cross_partition=True)).documents == []


# Properties of the validators (on an embedded registry with no models, so that a valid input
# ends in a not-found error and an invalid one in InvalidRegistryInput).

NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")
ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
RELAXED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@RELAXED
@given(st.text(max_size=80) | st.from_regex(NAME, fullmatch=True))
def test_model_names_are_accepted_exactly_when_they_match(empty: ModelRegistry, name: str) -> None:
    expected = ModelNotFound if NAME.fullmatch(name) else InvalidRegistryInput
    with pytest.raises(expected) as raised:
        empty.get_model(name)
    assert len(str(raised.value)) < 160


@RELAXED
@given(st.text(max_size=80) | st.from_regex(ALIAS, fullmatch=True))
def test_aliases_are_accepted_exactly_when_they_match(empty: ModelRegistry, alias: str) -> None:
    reserved = re.fullmatch(r"[vV][0-9]+", alias) or alias.lower() == "latest"
    valid = ALIAS.fullmatch(alias) and not reserved
    with pytest.raises(ModelNotFound if valid else InvalidRegistryInput):
        empty.get_version_by_alias("fraud", alias)


@RELAXED
@given(
    key=st.text(max_size=8) | st.integers(0, 300).map(lambda n: "k" * n),
    value=st.text(max_size=8) | st.integers(4990, 5010).map(lambda n: "v" * n),
)
def test_tags_are_accepted_exactly_within_mlflow_s_limits(
    empty: ModelRegistry, key: str, value: str
) -> None:
    valid = 1 <= len(key) <= 250 and len(value) <= 5000
    with pytest.raises(ModelNotFound if valid else InvalidRegistryInput) as raised:
        empty.set_model_tag("fraud", key, value)
    assert len(str(raised.value)) < 160


@RELAXED
@given(st.floats() | st.integers(-(10**400), 10**400) | st.booleans())
def test_metrics_are_accepted_exactly_when_finite_numbers(
    scratch: ModelRegistry, metric: float
) -> None:
    if isinstance(metric, bool):
        valid = False
    elif isinstance(metric, int):
        valid = abs(metric) < 2**1024 - 2**970  # what rounds to a finite float
    else:
        valid = math.isfinite(metric)
    if valid:
        assert register(scratch, metrics={"m": metric}).metrics == {"m": float(metric)}
    else:
        with pytest.raises(InvalidRegistryInput, match="metrics"):
            register(scratch, metrics={"m": metric})
