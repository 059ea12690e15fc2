"""Event settings: the pseudonym key (refused in prod unless set) and the publisher choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import DEVELOPMENT_PSEUDONYM_KEY, Adapter, SettingsError, load_settings
from shared.events.eventhubs import EventHubsPublisher
from shared.events.pseudonymize import Pseudonymizer
from shared.events.publisher import LocalEventPublisher
from shared.events.services import build_event_services
from shared.lakehouse.access import StaticAccess, emulator_options, lake_access

pytestmark = pytest.mark.unit

KEY = Pseudonymizer(b"k" * 32)
SECRET = "s" * 40


def test_the_development_key_is_embedded_for_local_runs() -> None:
    assert load_settings({}).pseudonym_key == DEVELOPMENT_PSEUDONYM_KEY
    assert load_settings({"PSEUDONYM_KEY": SECRET}).pseudonym_key == SECRET


@pytest.mark.parametrize("key", [None, DEVELOPMENT_PSEUDONYM_KEY])
def test_prod_refuses_a_missing_or_development_key(key: str | None) -> None:
    environ = {"PLATFORM_ENVIRONMENT": "prod"}
    if key is not None:
        environ["PSEUDONYM_KEY"] = key
    with pytest.raises(SettingsError, match="PSEUDONYM_KEY") as caught:
        load_settings(environ)
    assert caught.value.setting == "PSEUDONYM_KEY"
    assert load_settings({**PROD, "PSEUDONYM_KEY": SECRET}).pseudonym_key == SECRET


PROD = {
    "PLATFORM_ENVIRONMENT": "prod",
    "PSEUDONYM_KEY": "s" * 40,
    "LAKE_URI": "abfss://lake@platform.dfs.core.windows.net/data",
    "EventHubConnection__fullyQualifiedNamespace": "platform-ns.servicebus.windows.net",
    "BATCH_ENGINE": "duckdb",
    "COSMOS_ENDPOINT": "https://platform.documents.azure.com:443/",
    "PLATFORM_AUTH": "entra",
    "ENTRA_TENANT_ID": "8d7c2f5e-1b2a-4c3d-9e8f-0a1b2c3d4e5f",
    "ENTRA_AUDIENCE": "api://platform",
    "AUDIT_CHECKPOINTS_URL": "https://platformaudit.blob.core.windows.net/audit-checkpoints",
}


@pytest.mark.parametrize(
    ("setting", "value", "fragment"),
    [
        ("LAKE_URI", None, "abfss://"),
        ("LAKE_URI", "/var/lake", "local lake is refused"),
        ("LAKE_EMULATOR_ENDPOINT", "http://127.0.0.1:10000", "emulator"),
        ("EventHubConnection__fullyQualifiedNamespace", None, "local event log is refused"),
        ("EventHubConnection__fullyQualifiedNamespace", "localhost", "local event log"),
        ("BATCH_ENGINE", None, "must be set in prod"),
        ("COSMOS_ENDPOINT", None, "embedded SQLite document store is refused"),
        ("AUDIT_CHECKPOINTS_URL", None, "a file on an instance's disk is refused"),
    ],
)
def test_prod_refuses_every_embedded_adapter_naming_the_setting(
    setting: str, value: str | None, fragment: str
) -> None:
    environ = {k: v for k, v in PROD.items() if k != setting}
    if value is not None:
        environ[setting] = value
    with pytest.raises(SettingsError, match=fragment) as caught:
        load_settings(environ)
    assert caught.value.setting == setting
    for relaxed in ("dev", "test", "local"):  # the other environments may run embedded
        load_settings({**environ, "PLATFORM_ENVIRONMENT": relaxed})


def test_prod_starts_with_every_port_on_azure() -> None:
    settings = load_settings(PROD)
    assert settings.lake.adapter is Adapter.AZURE and settings.events.adapter is Adapter.AZURE
    assert settings.documents.adapter is Adapter.AZURE


def test_short_keys_are_refused() -> None:
    with pytest.raises(SettingsError, match="at least 32"):
        load_settings({"PSEUDONYM_KEY": "short"})


def test_the_key_never_appears_in_the_settings_repr() -> None:
    assert SECRET not in repr(load_settings({"PSEUDONYM_KEY": SECRET}))


def test_the_namespace_setting_switches_to_event_hubs(tmp_path: Path) -> None:
    name = "EventHubConnection__fullyQualifiedNamespace"
    local = load_settings({"PLATFORM_DATA_DIR": str(tmp_path)})
    assert local.events.adapter is Adapter.LOCAL
    assert load_settings({name: "localhost"}).events.adapter is Adapter.LOCAL
    azure = load_settings({name: "Platform-NS.servicebus.windows.net"})
    assert azure.events.fully_qualified_namespace == "platform-ns.servicebus.windows.net"
    with pytest.raises(SettingsError, match=name):
        load_settings({name: "not a host"})
    assert isinstance(
        build_event_services(local, StaticAccess(), KEY, {}).publisher, LocalEventPublisher
    )
    services = build_event_services(azure, StaticAccess(), KEY, {})
    assert isinstance(services.publisher, EventHubsPublisher)
    assert services.probe.backend == "events"


def test_the_local_log_is_the_devhost_s_when_it_runs(tmp_path: Path) -> None:
    environ = {
        "PLATFORM_DATA_DIR": str(tmp_path / "platform"),
        "DEVHOST_DATA_DIR": str(tmp_path / "devhost"),
    }
    settings = load_settings(environ)
    assert settings.events.local_log_dir == tmp_path / "devhost"
    publisher = build_event_services(settings, StaticAccess(), KEY, environ).publisher
    assert isinstance(publisher, LocalEventPublisher)
    assert publisher.log.path == (tmp_path / "devhost" / "eventhubs" / "local.sqlite3").resolve()


def test_the_lake_emulator_endpoint_gives_azurite_options() -> None:
    settings = load_settings(
        {
            "LAKE_URI": "abfss://lake@devstoreaccount1.dfs.core.windows.net/root",
            "LAKE_EMULATOR_ENDPOINT": "http://127.0.0.1:10100/",
        }
    )
    options, _ = lake_access(settings.lake).current()
    assert options == emulator_options("http://127.0.0.1:10100")
    assert options is not None and options["azure_storage_endpoint"].endswith("/devstoreaccount1")
    with pytest.raises(SettingsError, match="LAKE_EMULATOR_ENDPOINT"):
        load_settings({"LAKE_URI": settings.lake.uri, "LAKE_EMULATOR_ENDPOINT": "ftp://example"})


class Token:
    def __init__(self, token: str, expires_on: float) -> None:
        self.token, self.expires_on = token, expires_on


class Credential:
    def __init__(self) -> None:
        self.calls = 0

    def get_token(self, *scopes: str) -> Token:
        self.calls += 1
        assert scopes == ("https://storage.azure.com/.default",)
        return Token(f"t{self.calls}", 1000.0 * self.calls)


def test_entra_tokens_are_renewed_before_they_expire() -> None:
    from shared.lakehouse.access import EntraAccess

    now = [0.0]
    credential = Credential()
    access = EntraAccess(credential, clock=lambda: now[0])
    assert access.current() == ({"bearer_token": "t1"}, 1)
    now[0] = 600.0
    assert access.current() == ({"bearer_token": "t1"}, 1)
    now[0] = 800.0  # within five minutes of expiry
    assert access.current() == ({"bearer_token": "t2"}, 2)


def test_documents_are_embedded_in_the_hosts_data_dir_unless_cosmos_is_named(
    tmp_path: Path,
) -> None:
    local = load_settings({"PLATFORM_DATA_DIR": str(tmp_path / "platform")})
    assert local.documents.adapter is Adapter.LOCAL
    assert local.documents.embedded_path == tmp_path / "platform/documents/platform.sqlite3"
    hosted = load_settings({"DEVHOST_DATA_DIR": str(tmp_path / "host"), "COSMOS_DATABASE": "ops"})
    assert hosted.documents.embedded_path == tmp_path / "host/documents/ops.sqlite3"
    cosmos = load_settings({"COSMOS_ENDPOINT": "https://acct.documents.azure.com:443"})
    assert cosmos.documents.endpoint == "https://acct.documents.azure.com:443/"
    assert cosmos.documents.embedded_path is None


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("COSMOS_ENDPOINT", "http://acct.documents.azure.com"),
        ("COSMOS_ENDPOINT", "https://acct.documents.azure.com/?key=secret"),
        ("COSMOS_ENDPOINT", "AccountEndpoint=https://a/;AccountKey=abc=="),
        ("COSMOS_DATABASE", "../etc"),
        ("COSMOS_DATABASE", "a/b"),
        ("COSMOS_DATABASE", "x" * 256),
    ],
)
def test_bad_document_settings_are_refused_naming_them(setting: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({setting: value})
    assert caught.value.setting == setting
