"""The gateway's apps: keys issued once and kept only as hashes, authentication by one point
read, revocation, Entra ID applications, and limits validated against hostile values."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedded.documents.store import DocumentStore
from shared.ai.app_keys import app_id_of
from shared.ai.app_limits import AppLimits, InvalidLimits
from shared.ai.apps import (
    APPS_CONTAINER,
    AppExists,
    AppKeyResolver,
    AppNotFound,
    AppRegistry,
    InvalidApp,
    UnknownKey,
)
from shared.identity.principal import Principal
from tests.fakes.cosmos import container_on

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

LIMITS = AppLimits(tokens_per_minute=10_000, requests_per_minute=60, token_quota=1_000_000)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DocumentStore]:
    found = DocumentStore(tmp_path / "documents" / "platform.sqlite3")
    yield found
    found.close()


@pytest.fixture
def registry(store: DocumentStore) -> AppRegistry:
    return AppRegistry(store.container(APPS_CONTAINER), clock=lambda: 1_750_000_000.0)


@pytest.fixture(params=["embedded", "cosmos"])
def any_registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AppRegistry]:
    with container_on(request.param, APPS_CONTAINER, tmp_path) as container:
        yield AppRegistry(container)


def test_a_key_is_issued_once_and_authenticates_its_app(any_registry: AppRegistry) -> None:
    app, key = any_registry.issue("Checkout bot", LIMITS)
    assert key.startswith("pgw-") and len(key) == 64 and app_id_of(key) == app.id
    assert any_registry.authenticate(key) == app
    assert app.name == "Checkout bot" and app.limits == LIMITS and not app.revoked
    other, other_key = any_registry.issue("Search", LIMITS)
    assert other_key != key and any_registry.authenticate(other_key).id == other.id
    assert "key" not in app.to_json() and key not in str(app.to_json())


def test_only_the_hash_is_on_disk(store: DocumentStore, registry: AppRegistry) -> None:
    app, key = registry.issue("web", LIMITS)
    registry.authenticate(key)
    document = store.container(APPS_CONTAINER).read(app.id, app.id)
    assert document["key"]["scheme"] == "hmac-sha256"
    assert len(document["key"]["digest"]) == 64 and len(document["key"]["salt"]) == 32
    secret = key[len("pgw-0123456789abcdef-") :]
    files = list(store.path.parent.iterdir())  # the database, its WAL and shared memory
    assert files
    for path in files:
        data = path.read_bytes()
        assert key.encode() not in data and secret.encode() not in data, path.name


def test_unknown_malformed_and_wrong_keys_are_refused_alike(registry: AppRegistry) -> None:
    app, key = registry.issue("web", LIMITS)
    wrong_secret = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    unknown_app = "pgw-0123456789abcdef-" + key[len("pgw-0123456789abcdef-") :]
    for presented in (
        "",
        "pgw-",
        wrong_secret,
        unknown_app,
        key + "x",
        key.upper(),
        " " + key,
        "pgw-" + "0" * 16 + "-" + "é" * 43,
        "x" * 10_000,
        "entra-" + str(uuid.uuid4()),
    ):
        with pytest.raises(UnknownKey) as refused:
            registry.authenticate(presented)
        assert str(refused.value) == "the key is unknown or revoked"
    assert registry.authenticate(key).id == app.id


def test_authentication_is_one_point_read(store: DocumentStore) -> None:
    calls: list[str] = []
    container = store.container(APPS_CONTAINER)

    class Counting:
        def __getattr__(self, name: str) -> Any:
            calls.append(name)
            return getattr(container, name)

    counted: Any = Counting()
    registry = AppRegistry(counted)
    _, key = registry.issue("web", LIMITS)
    calls.clear()
    registry.authenticate(key)
    assert calls == ["read"]
    calls.clear()
    with pytest.raises(UnknownKey):
        registry.authenticate("not a key")
    assert calls == []  # refused without touching the store


def test_a_revoked_key_is_refused_and_its_hash_dropped(
    store: DocumentStore, registry: AppRegistry
) -> None:
    app, key = registry.issue("web", LIMITS)
    revoked = registry.revoke(app.id)
    assert revoked.revoked and revoked.revoked_at == "2025-06-15T15:06:40.000000Z"
    with pytest.raises(UnknownKey):
        registry.authenticate(key)
    assert store.container(APPS_CONTAINER).read(app.id, app.id)["key"] is None
    assert registry.revoke(app.id) == revoked  # harmless twice
    assert registry.get(app.id).revoked
    with pytest.raises(AppNotFound):
        registry.revoke("app-0000000000000000")
    with pytest.raises(AppNotFound):
        registry.revoke("../etc/passwd")


def test_entra_applications_are_found_by_their_client_id(any_registry: AppRegistry) -> None:
    client = uuid.uuid4()
    app = any_registry.register_entra("Reporting", str(client).upper(), LIMITS)
    assert app.id == f"entra-{client}" and app.entra_app_id == str(client)
    assert any_registry.by_entra_app(str(client)) == app
    assert any_registry.by_entra_app(str(uuid.uuid4())) is None
    assert any_registry.by_entra_app("not-a-guid") is None
    principal = Principal("app", str(client), "tenant")
    assert any_registry.for_principal(principal) == app
    assert any_registry.for_principal(Principal("user", str(client), "tenant")) is None
    with pytest.raises(AppExists):
        any_registry.register_entra("Again", str(client), LIMITS)
    any_registry.revoke(app.id)
    assert any_registry.by_entra_app(str(client)) is None
    assert any_registry.for_principal(principal) is None
    again = any_registry.register_entra("Reporting 2", str(client), LIMITS)
    assert not again.revoked and any_registry.by_entra_app(str(client)) == again
    with pytest.raises(InvalidApp):
        any_registry.register_entra("Bad", "not-a-guid", LIMITS)
    with pytest.raises(UnknownKey):  # an Entra app has no key
        any_registry.authenticate(f"entra-{client}")


def test_the_key_resolver_gives_the_authenticator_an_app_principal(
    registry: AppRegistry,
) -> None:
    app, key = registry.issue("web", LIMITS)
    resolver = AppKeyResolver(registry, "tenant-1", frozenset({"Platform.Writer"}))
    principal = resolver.resolve(key)
    assert principal == Principal("app", app.id, "tenant-1", frozenset({"Platform.Writer"}))
    assert registry.for_principal(principal) == app
    assert resolver.resolve("pgw-nope") is None
    registry.revoke(app.id)
    assert resolver.resolve(key) is None
    assert registry.for_principal(principal) is None


def test_limits_are_updated_and_apps_listed(registry: AppRegistry) -> None:
    first, key = registry.issue("web", LIMITS)
    second = registry.register_entra("jobs", str(uuid.uuid4()), LIMITS)
    changed = LIMITS.updated({"tokens_per_minute": 20_000, "quota_period": "day"})
    updated = registry.update_limits(first.id, changed)
    assert updated.limits == changed and registry.authenticate(key).limits == changed
    with pytest.raises(AppNotFound):
        registry.update_limits("app-ffffffffffffffff", changed)
    registry.revoke(second.id)
    assert {a.id for a in registry.list()} == {first.id, second.id}
    assert [a.id for a in registry.list(include_revoked=False)] == [first.id]


@pytest.mark.parametrize("name", ["", "   ", "a\x00b", "tab\there", "x" * 101, 7, None])
def test_hostile_app_names_are_refused(registry: AppRegistry, name: Any) -> None:
    with pytest.raises(InvalidApp):
        registry.issue(name, LIMITS)


HOSTILE = [-1, 0, True, False, 1.5, 100.0, "100", None, 10**30, math.nan, math.inf, [], {}]


@pytest.mark.parametrize("field", ["tokens_per_minute", "requests_per_minute", "token_quota"])
@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_limits_are_refused_naming_the_field(field: str, value: Any) -> None:
    body: dict[str, Any] = {**LIMITS.to_json(), "max_tokens_cap": 1, field: value}
    with pytest.raises(InvalidLimits, match=field):
        AppLimits.from_json(body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "JSON object"),
        ("tokens_per_minute=1", "JSON object"),
        ({"tokens_per_minute": 1}, "requests_per_minute, token_quota"),
        ({**LIMITS.to_json(), "admin": True}, "unknown limit 'admin'"),
        ({**LIMITS.to_json(), "quota_period": "week"}, "quota_period"),
        ({**LIMITS.to_json(), "quota_period": None}, "quota_period"),
        ({**LIMITS.to_json(), "quota_period": 1}, "quota_period"),
        ({**LIMITS.to_json(), "max_tokens_cap": 0}, "max_tokens_cap"),
        ({**LIMITS.to_json(), "max_tokens_cap": 10**7}, "max_tokens_cap"),
        ({**LIMITS.to_json(), "max_tokens_cap": 20_000}, "could never be admitted"),
        ({**LIMITS.to_json(), "token_quota": 100, "max_tokens_cap": 200}, "token_quota"),
        ({**LIMITS.to_json(), "token_quota": 10**300}, "that large"),
    ],
)
def test_malformed_limits_are_refused_with_a_clear_message(body: Any, message: str) -> None:
    with pytest.raises(InvalidLimits, match=message):
        AppLimits.from_json(body)


def test_limits_round_trip_and_partial_updates() -> None:
    assert AppLimits.from_json(LIMITS.to_json()) == LIMITS
    assert LIMITS.quota_period == "month" and LIMITS.max_tokens_cap == 4096
    assert LIMITS.updated({"requests_per_minute": 5}).requests_per_minute == 5
    with pytest.raises(InvalidLimits, match="unknown limit"):
        LIMITS.updated({"bogus": 1})
    with pytest.raises(InvalidLimits):
        LIMITS.updated({"requests_per_minute": -5})


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=20), inner),
    max_leaves=8,
)
_FIELDS = st.sampled_from([*LIMITS.to_json(), "other"])


@settings(max_examples=200, deadline=None)
@given(_JSON | st.dictionaries(_FIELDS, _JSON | st.integers(-5, 10**7)))
def test_any_json_is_limits_or_refused(body: Any) -> None:
    try:
        limits = AppLimits.from_json(body)
    except InvalidLimits as refused:
        assert len(str(refused)) < 300
        return
    assert AppLimits.from_json(limits.to_json()) == limits


def test_the_app_a_key_just_authenticated_is_known_without_a_second_read(
    registry: AppRegistry,
) -> None:
    app, key = registry.issue("fresh", LIMITS)
    principal = Principal("app", app.id, "tenant", frozenset())
    assert registry.just_authenticated(principal) is None  # no key checked yet
    assert registry.authenticate(key) == app
    assert registry.just_authenticated(principal) == app
    assert registry.just_authenticated(Principal("user", app.id, "tenant", frozenset())) is None
    registry.revoke(app.id)
    with pytest.raises(UnknownKey):
        registry.authenticate(key)  # every request checks its key against the store
