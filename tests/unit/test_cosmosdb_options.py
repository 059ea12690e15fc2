"""The Cosmos DB trigger's and bindings' options: defaults, and a clear error for each bad value."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import azure.functions as func
import pytest

from devhost.appsettings import AppSettings
from devhost.cosmosdb.extension import CosmosDBConfigError, poll_interval_s
from devhost.cosmosdb.options import (
    CosmosDBBindingError,
    InputOptions,
    OutputOptions,
    TriggerOptions,
    account_host,
)
from devhost.errors import StartupError
from devhost.indexing import BindingSpec, FunctionSpec, index_app

pytestmark = pytest.mark.unit


def _trigger(**config: Any) -> FunctionSpec:
    app = func.FunctionApp()

    @app.function_name("watch")
    @app.cosmos_db_trigger(
        arg_name="documents",
        connection="Conn",
        database_name=config.pop("database_name", "db"),
        container_name=config.pop("container_name", "items"),
        **config,
    )
    def watch(documents: func.DocumentList) -> None: ...

    return index_app(app, AppSettings({}, environ={}))[0]


def _binding(function: FunctionSpec, **config: Any) -> BindingSpec:
    base = {"connection": "Conn", "databaseName": "db", "containerName": "items"}
    return BindingSpec("found", "cosmosDB", "in", {**base, **config})


def test_trigger_defaults_follow_azure_except_the_poll_delay() -> None:
    options = TriggerOptions.from_function(_trigger())
    assert options.database == options.lease_database == "db"
    assert options.container == "items"
    assert options.lease_container == "leases"
    assert options.lease_prefix == ""
    assert options.max_items == 100
    assert options.feed_poll_delay_ms is None  # the devhost's own interval, not Azure's 5 s
    assert not options.create_lease_container
    assert not options.start_from_beginning
    assert options.start_description == "from now"


def test_trigger_reads_every_option_the_decorator_writes() -> None:
    options = TriggerOptions.from_function(
        _trigger(
            lease_container_name="my-leases",
            lease_database_name="other",
            create_lease_container_if_not_exists=True,
            start_from_beginning=True,
            max_items_per_invocation=7,
            feed_poll_delay=250,
            lease_container_prefix="audit-",
        )
    )
    assert (options.lease_database, options.lease_container) == ("other", "my-leases")
    assert options.create_lease_container and options.start_from_beginning
    assert (options.max_items, options.feed_poll_delay_ms) == (7, 250)
    assert options.lease_prefix == "audit-"


def test_start_from_time_is_read_as_utc() -> None:
    options = TriggerOptions.from_function(_trigger(start_from_time="2024-05-01T10:00:00"))
    assert options.start_from_time == datetime(2024, 5, 1, 10, tzinfo=UTC)


def test_booleans_and_numbers_given_as_setting_text_are_read() -> None:
    function = _trigger(start_from_beginning="True", max_items_per_invocation="12")
    options = TriggerOptions.from_function(function)
    assert options.start_from_beginning and options.max_items == 12


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"max_items_per_invocation": 0}, "maxItemsPerInvocation"),
        ({"max_items_per_invocation": "many"}, "maxItemsPerInvocation"),
        ({"feed_poll_delay": -5}, "feedPollDelay"),
        ({"feed_poll_delay": True}, "feedPollDelay"),
        ({"start_from_beginning": "yes"}, "startFromBeginning"),
        ({"create_lease_container_if_not_exists": 1}, "createLeaseContainerIfNotExists"),
        ({"database_name": ""}, "databaseName"),
        ({"database_name": "a/b"}, "databaseName"),
        ({"database_name": ".."}, "databaseName"),
        ({"container_name": "x" * 256}, "containerName"),
        ({"container_name": "trailing "}, "containerName"),
        ({"lease_container_name": "a#b"}, "leaseContainerName"),
        ({"lease_container_prefix": "a/"}, "leaseContainerPrefix"),
        ({"start_from_time": "yesterday"}, "startFromTime"),
        ({"start_from_time": "2024-01-01", "start_from_beginning": True}, "startFromTime"),
    ],
)
def test_bad_trigger_values_name_the_function_and_the_value(
    config: dict[str, Any], named: str
) -> None:
    with pytest.raises(CosmosDBBindingError, match=named) as raised:
        TriggerOptions.from_function(_trigger(**config))
    assert "function 'watch', binding 'documents' (cosmosDBTrigger)" in str(raised.value)
    assert isinstance(raised.value, StartupError)


def test_v3_binding_names_are_refused_with_the_v4_name() -> None:
    app = func.FunctionApp()

    @app.cosmos_db_trigger_v3(
        arg_name="documents",
        database_name="db",
        collection_name="items",
        connection_string_setting="Conn",
    )
    def watch(documents: func.DocumentList) -> None: ...

    function = index_app(app, AppSettings({}, environ={}))[0]
    with pytest.raises(CosmosDBBindingError, match="collectionName .* use containerName"):
        TriggerOptions.from_function(function)


def test_input_options_and_their_errors() -> None:
    function = _trigger()
    point = InputOptions.from_binding(function, _binding(function, id="{id}", partitionKey="{k}"))
    assert (point.id, point.partition_key, point.sql_query) == ("{id}", "{k}", None)
    with pytest.raises(CosmosDBBindingError, match="id or sqlQuery, not both"):
        InputOptions.from_binding(function, _binding(function, id="1", sqlQuery="SELECT"))
    with pytest.raises(CosmosDBBindingError, match="connection is required"):
        InputOptions.from_binding(function, _binding(function, connection=""))
    with pytest.raises(CosmosDBBindingError, match="id must be a string"):
        InputOptions.from_binding(function, _binding(function, id=5))


def test_output_options_default_to_an_id_partition_key_and_check_the_path() -> None:
    function = _trigger()
    options = OutputOptions.from_binding(function, _binding(function))
    assert (options.partition_key_path, options.create_if_not_exists) == ("/id", False)
    with pytest.raises(CosmosDBBindingError, match="partition key path, like /id"):
        OutputOptions.from_binding(function, _binding(function, partitionKey="accountId"))
    with pytest.raises(CosmosDBBindingError, match="createIfNotExists must be true or false"):
        OutputOptions.from_binding(function, _binding(function, createIfNotExists="maybe"))


@pytest.mark.parametrize(
    ("settings", "host"),
    [
        ({}, "localhost"),
        ({"Conn": "AccountEndpoint=https://Acct.documents.azure.com:443/;AccountKey=k;"}, "acct"),
        ({"Conn__accountEndpoint": "https://other.documents.azure.com:443/"}, "other"),
    ],
)
def test_the_account_comes_from_the_connection(settings: dict[str, str], host: str) -> None:
    assert account_host(settings, "Conn").split(".")[0] == host


@pytest.mark.parametrize("value", ["0", "fast", "60001"])
def test_a_bad_poll_setting_names_itself(value: str) -> None:
    with pytest.raises(CosmosDBConfigError, match="DEVHOST_COSMOSDB_POLL_MS"):
        poll_interval_s({"DEVHOST_COSMOSDB_POLL_MS": value})
    assert poll_interval_s({}) == 0.1
    assert poll_interval_s({"DEVHOST_COSMOSDB_POLL_MS": "20"}) == 0.02
