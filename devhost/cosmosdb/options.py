"""The cosmosDBTrigger and cosmosDB bindings' configuration, read from their binding JSON.

The names are those of the Cosmos DB extension v4 (extension bundle 4.x), as the v2 decorators
of `azure-functions` write them: `databaseName`, `containerName`, `leaseContainerName`,
`createLeaseContainerIfNotExists`, `startFromBeginning`, `maxItemsPerInvocation`, ... Every
value is checked here, so that a bad one fails with the function, binding and value named.
Options that tune Azure's service (`preferredLocations`, throughput, lease intervals,
`leaseConnection`) are accepted and have no effect on the embedded store.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from devhost.errors import StartupError
from devhost.indexing import BindingSpec, FunctionSpec

DEFAULT_LEASE_CONTAINER = "leases"
DEFAULT_MAX_ITEMS = 100
DEFAULT_PARTITION_KEY_PATH = "/id"
MAX_NAME_LENGTH = 255
MAX_FEED_POLL_DELAY_MS = 3_600_000
LOCAL_ACCOUNT = "localhost"
_FORBIDDEN_CHARACTERS = frozenset("/\\?#")
# Names of the extension v3 (`cosmos_db_trigger_v3`), which bundle 4.x no longer reads.
_V3_NAMES = {
    "collectionName": "containerName",
    "leaseCollectionName": "leaseContainerName",
    "connectionStringSetting": "connection",
    "createLeaseCollectionIfNotExists": "createLeaseContainerIfNotExists",
    "leaseCollectionPrefix": "leaseContainerPrefix",
}
_ACCOUNT_ENDPOINT = re.compile(r"(?i)(?:^|;)\s*AccountEndpoint\s*=\s*https?://([^/;:]+)")


class CosmosDBBindingError(StartupError, ValueError):
    """A cosmosDBTrigger or cosmosDB binding value the devhost cannot use; the message names the
    function, the binding and the value. A trigger's stops the host; an input or output
    binding's fails the invocation."""


def where(function: FunctionSpec, binding: BindingSpec) -> str:
    """How errors name a binding: `function 'f', binding 'docs' (cosmosDBTrigger)`."""
    return f"function {function.name!r}, binding {binding.name!r} ({binding.type})"


def resource_name(value: Any, key: str, at: str) -> str:
    """A database or container name Cosmos DB would take: 1-255 characters, none of / \\ ? #,
    not ending in a space. It also names the store's file, so `.` and `..` are refused."""
    if not isinstance(value, str) or not value:
        raise CosmosDBBindingError(f"{at}: {key} is required (a database or container name)")
    if len(value) > MAX_NAME_LENGTH:
        raise CosmosDBBindingError(f"{at}: {key} is over {MAX_NAME_LENGTH} characters")
    found = _FORBIDDEN_CHARACTERS.intersection(value)
    if found or value.endswith(" ") or value in (".", "..") or "\x00" in value:
        raise CosmosDBBindingError(
            f"{at}: {key} {value!r} is not a valid name (1-255 characters, none of / \\ ? #, "
            "not ending in a space)"
        )
    return value


def _bool(config: Mapping[str, Any], key: str, at: str) -> bool:
    value = config.get(key)
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise CosmosDBBindingError(f"{at}: {key} must be true or false, not {value!r}")


def _int(config: Mapping[str, Any], key: str, at: str, minimum: int, maximum: int) -> int | None:
    value = config.get(key)
    if value is None:
        return None
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    if number is None or not minimum <= number <= maximum:
        raise CosmosDBBindingError(
            f"{at}: {key} must be a whole number from {minimum} to {maximum}, not {value!r}"
        )
    return number


def _optional_text(config: Mapping[str, Any], key: str, at: str) -> str | None:
    value = config.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise CosmosDBBindingError(f"{at}: {key} must be a string, not {value!r}")
    return value


def _refuse_v3_names(config: Mapping[str, Any], at: str) -> None:
    for old, new in _V3_NAMES.items():
        if old in config:
            raise CosmosDBBindingError(
                f"{at}: {old} is a Cosmos DB extension v3 name (the *_v3 decorators); the "
                f"devhost runs extension v4, as extension bundle 4.x does: use {new}"
            )


def _connection(config: Mapping[str, Any], at: str) -> str:
    value = config.get("connection")
    if not isinstance(value, str) or not value.strip():
        raise CosmosDBBindingError(
            f"{at}: connection is required (the app setting that names the account)"
        )
    return value


def account_host(settings: Mapping[str, str], connection: str) -> str:
    """The account a connection names, as lease ids carry it: the host of
    `<connection>__accountEndpoint` (identity-based) or of `AccountEndpoint=` in the connection
    string; `localhost` when neither is set (the devhost has one embedded account)."""
    endpoint = settings.get(f"{connection}__accountEndpoint", "").strip()
    if endpoint:
        match = re.match(r"(?i)https?://([^/;:]+)", endpoint)
        return match.group(1).lower() if match else LOCAL_ACCOUNT
    found = _ACCOUNT_ENDPOINT.search(settings.get(connection, ""))
    return found.group(1).lower() if found else LOCAL_ACCOUNT


def _utc_time(value: Any, key: str, at: str) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise CosmosDBBindingError(
            f"{at}: {key} must be an ISO 8601 time like 2024-05-01T00:00:00Z, not {value!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class TriggerOptions:
    """A cosmosDBTrigger binding, `%Setting%` references already resolved.

    `feed_poll_delay_ms` is None when the binding does not set `feedPollDelay`: the devhost's
    own poll interval applies then, not Azure's 5 s.
    """

    database: str
    container: str
    connection: str
    lease_database: str
    lease_container: str
    lease_prefix: str
    create_lease_container: bool
    start_from_beginning: bool
    start_from_time: datetime | None
    max_items: int
    feed_poll_delay_ms: int | None

    @classmethod
    def from_function(cls, function: FunctionSpec) -> TriggerOptions:
        binding = function.trigger
        at = where(function, binding)
        config = binding.config
        _refuse_v3_names(config, at)
        database = resource_name(config.get("databaseName"), "databaseName", at)
        lease_database = config.get("leaseDatabaseName") or database
        prefix = _optional_text(config, "leaseContainerPrefix", at) or ""
        if _FORBIDDEN_CHARACTERS.intersection(prefix):
            raise CosmosDBBindingError(
                f"{at}: leaseContainerPrefix {prefix!r} must not contain / \\ ? or # "
                "(it starts the lease documents' ids)"
            )
        start_from_beginning = _bool(config, "startFromBeginning", at)
        start_from_time = _utc_time(config.get("startFromTime"), "startFromTime", at)
        if start_from_beginning and start_from_time is not None:
            raise CosmosDBBindingError(
                f"{at}: startFromBeginning and startFromTime cannot both be set"
            )
        return cls(
            database=database,
            container=resource_name(config.get("containerName"), "containerName", at),
            connection=_connection(config, at),
            lease_database=resource_name(lease_database, "leaseDatabaseName", at),
            lease_container=resource_name(
                config.get("leaseContainerName") or DEFAULT_LEASE_CONTAINER,
                "leaseContainerName",
                at,
            ),
            lease_prefix=prefix,
            create_lease_container=_bool(config, "createLeaseContainerIfNotExists", at),
            start_from_beginning=start_from_beginning,
            start_from_time=start_from_time,
            max_items=_int(config, "maxItemsPerInvocation", at, 1, 1_000_000) or DEFAULT_MAX_ITEMS,
            feed_poll_delay_ms=_int(config, "feedPollDelay", at, 1, MAX_FEED_POLL_DELAY_MS),
        )

    @property
    def start_description(self) -> str:
        if self.start_from_beginning:
            return "from the beginning"
        if self.start_from_time is not None:
            return f"from {self.start_from_time.isoformat()}"
        return "from now"


@dataclass(frozen=True)
class InputOptions:
    """A cosmosDB input binding: a point read (`id`, `partitionKey`), a query (`sqlQuery`, in
    `partitionKey` when given), or, with neither, every document of the container."""

    database: str
    container: str
    id: str | None
    partition_key: str | None
    sql_query: str | None

    @classmethod
    def from_binding(cls, function: FunctionSpec, binding: BindingSpec) -> InputOptions:
        at = where(function, binding)
        config = binding.config
        _refuse_v3_names(config, at)
        _connection(config, at)
        document_id = _optional_text(config, "id", at)
        sql_query = _optional_text(config, "sqlQuery", at)
        if document_id is not None and sql_query is not None:
            raise CosmosDBBindingError(f"{at}: set id or sqlQuery, not both")
        return cls(
            database=resource_name(config.get("databaseName"), "databaseName", at),
            container=resource_name(config.get("containerName"), "containerName", at),
            id=document_id,
            partition_key=_optional_text(config, "partitionKey", at),
            sql_query=sql_query,
        )


@dataclass(frozen=True)
class OutputOptions:
    """A cosmosDB output binding: documents are upserted into the container, which is created
    with `partitionKey` as its partition key path (default /id) when `createIfNotExists`."""

    database: str
    container: str
    create_if_not_exists: bool
    partition_key_path: str

    @classmethod
    def from_binding(cls, function: FunctionSpec, binding: BindingSpec) -> OutputOptions:
        at = where(function, binding)
        config = binding.config
        _refuse_v3_names(config, at)
        _connection(config, at)
        path = _optional_text(config, "partitionKey", at) or DEFAULT_PARTITION_KEY_PATH
        if not path.startswith("/") or len(path) < 2 or "//" in path or path.endswith("/"):
            raise CosmosDBBindingError(
                f"{at}: partitionKey is the container's partition key path, like /id or "
                f"/accountId, not {path!r}"
            )
        return cls(
            database=resource_name(config.get("databaseName"), "databaseName", at),
            container=resource_name(config.get("containerName"), "containerName", at),
            create_if_not_exists=_bool(config, "createIfNotExists", at),
            partition_key_path=path,
        )
