"""The platform's typed settings: one object, built once, failing fast with the setting's name."""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from embedded.documents.store import database_path
from embedded.identity.local_issuer import jwks_path
from shared.identity.roles import ALL_ROLES

PROJECT_ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"setting {name}: {problem}")
        self.setting = name


class Adapter(StrEnum):
    LOCAL = "local"
    AZURE = "azure"


@dataclass(frozen=True)
class LakeSettings:
    """Where the Delta lakehouse lives: a local folder or `abfss://` on ADLS Gen2."""

    uri: str
    adapter: Adapter
    emulator_endpoint: str | None = None  # LAKE_EMULATOR_ENDPOINT: Azurite's blob endpoint


DEVELOPMENT_PSEUDONYM_KEY = "local-development-pseudonym-key/not-secret/refused-in-prod"
EVENTHUB_CONNECTION = "EventHubConnection"


# The devhost exports its data dir under this name; its event log lives there even when the
# platform's own data dir (PLATFORM_DATA_DIR) is elsewhere.
HOST_DATA_DIR = "DEVHOST_DATA_DIR"


@dataclass(frozen=True)
class EventsSettings:
    """Event publishing: Event Hubs when `EventHubConnection__fullyQualifiedNamespace` is set
    (identity-based, as the trigger's connection), else the embedded event log in
    `local_log_dir` (the host's data dir, `DEVHOST_DATA_DIR`, else `PLATFORM_DATA_DIR`)."""

    adapter: Adapter = Adapter.LOCAL
    connection: str = EVENTHUB_CONNECTION
    fully_qualified_namespace: str | None = None
    local_log_dir: Path | None = None


@dataclass(frozen=True)
class DocumentsSettings:
    """Operational documents: Cosmos DB when `COSMOS_ENDPOINT` is set (Entra ID, no keys),
    else the embedded SQLite store at `embedded_path` (in the host's data dir, where the
    devhost's Cosmos DB bindings read it). `COSMOS_DATABASE` names the database either way."""

    adapter: Adapter = Adapter.LOCAL
    database: str = "platform"
    endpoint: str | None = None
    embedded_path: Path | None = None


class AuthMode(StrEnum):
    ENTRA = "entra"
    EASYAUTH = "easyauth"
    LOCAL = "local"


@dataclass(frozen=True)
class AuthSettings:
    """How callers are identified (`PLATFORM_AUTH`): Entra ID tokens validated in the app,
    App Service Authentication's principal header, or the devhost's local issuer (only with
    `PLATFORM_ENVIRONMENT=local`), where a loopback caller without a token acts as the local
    developer with `LOCAL_DEVELOPER_ROLES`."""

    mode: AuthMode = AuthMode.LOCAL
    tenant_id: str | None = None
    audiences: tuple[str, ...] = ()
    jwks_url: str | None = None
    local_developer_roles: tuple[str, ...] = ()
    local_jwks_path: Path | None = None


class BatchEngineKind(StrEnum):
    DUCKDB = "duckdb"
    DATABRICKS = "databricks"
    SYNAPSE = "synapse"


@dataclass(frozen=True)
class DatabricksSettings:
    """A Databricks workspace that runs the gold SQL through Jobs `runs/submit`."""

    host: str
    cluster_id: str
    runner_path: str
    token: str | None = None  # None: the SDK's default auth chain (Entra ID, managed identity)


@dataclass(frozen=True)
class SynapseSettings:
    """A Synapse workspace whose pipeline runs the gold SQL on Spark."""

    endpoint: str
    pipeline: str


@dataclass(frozen=True)
class BatchSettings:
    """The batch engine (`BATCH_ENGINE`) and how the medallion pipeline drives it."""

    engine: BatchEngineKind = BatchEngineKind.DUCKDB
    databricks: DatabricksSettings | None = None
    synapse: SynapseSettings | None = None
    poll_first_s: float = 5.0
    poll_max_s: float = 60.0
    run_timeout_s: float = 3600.0
    vacuum_retention_hours: int = 168


@dataclass(frozen=True)
class LifecycleSettings:
    """The model lifecycle's policy (`orchestrations/lifecycle.py`): how long an approval is
    waited for and what a timeout does, a canary step's wait and the rows it needs, and the
    gate's latency budget."""

    approval_timeout_s: float = 86400.0  # MODEL_APPROVAL_TIMEOUT_S
    on_approval_timeout: str = "escalate"  # MODEL_APPROVAL_ON_TIMEOUT: promote or escalate
    canary_step_s: float = 900.0  # MODEL_CANARY_STEP_S
    canary_min_rows: int = 200  # MODEL_CANARY_MIN_ROWS
    canary_max_score_psi: float = 0.25  # MODEL_CANARY_MAX_SCORE_PSI: challenger vs champion
    latency_budget_ms: float = 10.0  # MODEL_LATENCY_BUDGET_MS: p99 of one record, at the gate


@dataclass(frozen=True)
class Settings:
    """Everything the platform reads from its environment.

    Built by `load_settings()` from app settings (the environment, which Core Tools
    and the devhost fill from `local.settings.json`). Every field has an embedded default
    so `make run` needs no configuration, except where Azure needs a real value.
    """

    environment: str
    data_dir: Path
    lake: LakeSettings
    log_level: str
    batch: BatchSettings = field(default_factory=BatchSettings)
    events: EventsSettings = field(default_factory=EventsSettings)
    documents: DocumentsSettings = field(default_factory=DocumentsSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    # The blob container the audit trail's hourly checkpoints go to (time-based immutability
    # in Azure); None: an append-only file beside the embedded documents.
    audit_checkpoints_url: str | None = None
    # How often a serving process looks for a new champion of each model (MODEL_REFRESH_S).
    model_refresh_s: float = 30.0
    # The MLflow that is the model registry (MLFLOW_TRACKING_URI: an MLflow server, Databricks
    # or Azure ML); None: the registry on the document store, model files beside the lake.
    mlflow_tracking_uri: str | None = None
    lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)
    pseudonym_key: str = field(default=DEVELOPMENT_PSEUDONYM_KEY, repr=False)


def _text(source: Mapping[str, str], name: str, default: str | None = None) -> str:
    value = source.get(name)
    if value is None or value.strip() == "":
        if default is None:
            raise SettingsError(name, "is required but not set")
        return default
    return value.strip()


def _choice(source: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _text(source, name, default)
    if value.lower() not in choices:
        raise SettingsError(name, f"must be one of {', '.join(choices)}, not {value!r}")
    return value.lower()


def _parsed(
    source: Mapping[str, str], name: str, default: str, parse: Callable[[str], T], expected: str
) -> T:
    value = _text(source, name, default)
    try:
        return parse(value)
    except (TypeError, ValueError) as error:
        raise SettingsError(name, f"must be {expected}, not {value!r}") from error


def _data_dir(source: Mapping[str, str]) -> Path:
    value = _text(source, "PLATFORM_DATA_DIR", ".data")
    if "\x00" in value:
        raise SettingsError("PLATFORM_DATA_DIR", "must be a path")
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def _lake(source: Mapping[str, str], data_dir: Path) -> LakeSettings:
    uri = _text(source, "LAKE_URI", (data_dir / "lake").as_posix())
    if uri.startswith("abfss://"):
        rest = uri.removeprefix("abfss://")
        container, _, account = rest.partition("@")
        if not container or ".dfs." not in account:
            raise SettingsError(
                "LAKE_URI",
                "an ADLS Gen2 URI looks like abfss://<container>@<account>.dfs.core.windows.net/<path>",
            )
        return LakeSettings(
            uri=uri.rstrip("/"), adapter=Adapter.AZURE, emulator_endpoint=_emulator(source)
        )
    if "://" in uri and not uri.startswith("file://"):
        raise SettingsError(
            "LAKE_URI", f"must be a local path, file:// or abfss:// URI, not {uri!r}"
        )
    path = Path(uri.removeprefix("file://")).expanduser()
    if not path.is_absolute():
        path = PROJECT_ROOT / path
    return LakeSettings(uri=path.as_posix(), adapter=Adapter.LOCAL)


def _emulator(source: Mapping[str, str]) -> str | None:
    value = source.get("LAKE_EMULATOR_ENDPOINT", "").strip().rstrip("/")
    if not value:
        return None
    if not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+(:[0-9]+)?", value):
        raise SettingsError("LAKE_EMULATOR_ENDPOINT", f"must be http(s)://host:port, not {value!r}")
    return value


def _events(source: Mapping[str, str], data_dir: Path) -> EventsSettings:
    name = f"{EVENTHUB_CONNECTION}__fullyQualifiedNamespace"
    host = source.get(name, "").strip().lower()
    if not host or host in ("localhost", "127.0.0.1", "::1", "[::1]"):
        host_dir = source.get(HOST_DATA_DIR, "").strip()
        return EventsSettings(local_log_dir=Path(host_dir) if host_dir else data_dir)
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,48}[a-z0-9](\.[a-z0-9-]+)+", host):
        raise SettingsError(name, f"must be <namespace>.servicebus.windows.net, not {host!r}")
    return EventsSettings(adapter=Adapter.AZURE, fully_qualified_namespace=host)


def _documents(source: Mapping[str, str], data_dir: Path) -> DocumentsSettings:
    database = _text(source, "COSMOS_DATABASE", "platform")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}", database):
        raise SettingsError(
            "COSMOS_DATABASE",
            f"must be 1 to 255 letters, digits, '.', '_' or '-', not {database!r}",
        )
    endpoint = source.get("COSMOS_ENDPOINT", "").strip()
    if not endpoint:
        host_dir = source.get(HOST_DATA_DIR, "").strip()
        base = Path(host_dir) if host_dir else data_dir
        return DocumentsSettings(database=database, embedded_path=database_path(base, database))
    if not re.fullmatch(r"https://[A-Za-z0-9.\-]+(:[0-9]{1,5})?/?", endpoint):
        raise SettingsError(
            "COSMOS_ENDPOINT",
            f"must be https://<account>.documents.azure.com:443/, not {endpoint!r}",
        )
    return DocumentsSettings(
        adapter=Adapter.AZURE, database=database, endpoint=endpoint.rstrip("/") + "/"
    )


_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


def _auth(source: Mapping[str, str], environment: str, data_dir: Path) -> AuthSettings:
    raw = source.get("PLATFORM_AUTH", "").strip().lower()
    if not raw and environment != "local":
        raise SettingsError(
            "PLATFORM_AUTH",
            f"is required with PLATFORM_ENVIRONMENT={environment}: entra or easyauth",
        )
    if raw and raw not in tuple(m.value for m in AuthMode):
        raise SettingsError("PLATFORM_AUTH", f"must be entra, easyauth or local, not {raw!r}")
    mode = AuthMode(raw or "local")
    if mode is AuthMode.LOCAL:
        if environment != "local":
            raise SettingsError(
                "PLATFORM_AUTH",
                f"local (the devhost's issuer, loopback callers trusted) is refused with "
                f"PLATFORM_ENVIRONMENT={environment}; use entra or easyauth",
            )
        roles = tuple(
            _text(source, "LOCAL_DEVELOPER_ROLES", ",".join(ALL_ROLES)).replace(" ", "").split(",")
        )
        unknown = sorted(set(roles) - set(ALL_ROLES))
        if unknown or not all(roles):
            raise SettingsError(
                "LOCAL_DEVELOPER_ROLES",
                f"must be roles among {', '.join(ALL_ROLES)}, not {', '.join(unknown) or 'blank'}",
            )
        host_dir = source.get(HOST_DATA_DIR, "").strip()
        return AuthSettings(
            mode=mode,
            local_developer_roles=roles,
            local_jwks_path=jwks_path(Path(host_dir) if host_dir else data_dir),
        )
    tenant = source.get("ENTRA_TENANT_ID", "").strip()
    if mode is AuthMode.EASYAUTH and not tenant:
        return AuthSettings(mode=mode)
    if not re.fullmatch(_GUID, tenant):
        raise SettingsError("ENTRA_TENANT_ID", f"must be the tenant's GUID, not {tenant!r}")
    if mode is AuthMode.EASYAUTH:
        return AuthSettings(mode=mode, tenant_id=tenant.lower())
    audiences = tuple(a.strip() for a in _text(source, "ENTRA_AUDIENCE").split(",") if a.strip())
    if not audiences:
        raise SettingsError("ENTRA_AUDIENCE", "must name the app's client id and App ID URI")
    jwks_url = _text(
        source,
        "ENTRA_JWKS_URL",
        f"https://login.microsoftonline.com/{tenant.lower()}/discovery/v2.0/keys",
    )
    if not jwks_url.startswith("https://"):
        raise SettingsError("ENTRA_JWKS_URL", f"must be an https:// URL, not {jwks_url!r}")
    return AuthSettings(mode=mode, tenant_id=tenant.lower(), audiences=audiences, jwks_url=jwks_url)


def _audit_checkpoints(source: Mapping[str, str]) -> str | None:
    value = source.get("AUDIT_CHECKPOINTS_URL", "").strip().rstrip("/")
    if not value:
        return None
    if not re.fullmatch(
        r"https://[a-z0-9.\-]+(:[0-9]{1,5})?/[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])", value
    ):
        raise SettingsError(
            "AUDIT_CHECKPOINTS_URL",
            f"must be https://<account>.blob.core.windows.net/<container>, not {value[:80]!r}",
        )
    return value


def _pseudonym_key(source: Mapping[str, str], environment: str) -> str:
    value = source.get("PSEUDONYM_KEY", "").strip()
    if environment == "prod" and value in ("", DEVELOPMENT_PSEUDONYM_KEY):
        raise SettingsError(
            "PSEUDONYM_KEY",
            "must be a secret of at least 32 characters in prod (a Key Vault reference); "
            "the embedded development key is refused",
        )
    if not value:
        return DEVELOPMENT_PSEUDONYM_KEY
    if len(value.encode("utf-8", "surrogatepass")) < 32:
        raise SettingsError("PSEUDONYM_KEY", "must be at least 32 characters long")
    return value


def _batch(source: Mapping[str, str]) -> BatchSettings:
    engine = BatchEngineKind(
        _choice(source, "BATCH_ENGINE", "duckdb", tuple(kind.value for kind in BatchEngineKind))
    )
    databricks = synapse = None
    if engine is BatchEngineKind.DATABRICKS:
        databricks = DatabricksSettings(
            host=_text(source, "DATABRICKS_HOST").rstrip("/"),
            cluster_id=_text(source, "DATABRICKS_CLUSTER_ID"),
            runner_path=_text(source, "DATABRICKS_RUNNER_PATH", "dbfs:/platform/spark_runner.py"),
            token=source.get("DATABRICKS_TOKEN") or None,
        )
    if engine is BatchEngineKind.SYNAPSE:
        endpoint = _text(source, "SYNAPSE_ENDPOINT").rstrip("/")
        if not endpoint.startswith("https://"):
            raise SettingsError("SYNAPSE_ENDPOINT", f"must be an https:// URL, not {endpoint!r}")
        synapse = SynapseSettings(
            endpoint=endpoint, pipeline=_text(source, "SYNAPSE_PIPELINE", "platform_gold_sql")
        )

    def positive(name: str, default: str) -> float:
        value = _parsed(source, name, default, float, "a number of seconds")
        if not value > 0:
            raise SettingsError(name, f"must be positive, not {value}")
        return value

    return BatchSettings(
        engine=engine,
        databricks=databricks,
        synapse=synapse,
        poll_first_s=positive("PIPELINE_POLL_FIRST_S", "5"),
        poll_max_s=positive("PIPELINE_POLL_MAX_S", "60"),
        run_timeout_s=positive("PIPELINE_RUN_TIMEOUT_S", "3600"),
        vacuum_retention_hours=_parsed(
            source, "PIPELINE_VACUUM_RETENTION_HOURS", "168", int, "a whole number of hours"
        ),
    )


def _model_refresh(source: Mapping[str, str]) -> float:
    value = _parsed(source, "MODEL_REFRESH_S", "30", float, "a number of seconds")
    if not 0.1 <= value <= 3600:
        raise SettingsError("MODEL_REFRESH_S", f"must be from 0.1 to 3600 seconds, not {value}")
    return value


def _lifecycle(source: Mapping[str, str]) -> LifecycleSettings:
    def within(name: str, default: str, low: float, high: float, kind: type = float) -> float:
        expected = "a whole number" if kind is int else "a number"
        value: float = _parsed(source, name, default, kind, expected)
        if not low <= value <= high:  # NaN is outside every range
            raise SettingsError(name, f"must be from {low:g} to {high:g}, not {value}")
        return value

    return LifecycleSettings(
        approval_timeout_s=within("MODEL_APPROVAL_TIMEOUT_S", "86400", 1, 30 * 86400),
        on_approval_timeout=_choice(
            source, "MODEL_APPROVAL_ON_TIMEOUT", "escalate", ("promote", "escalate")
        ),
        canary_step_s=within("MODEL_CANARY_STEP_S", "900", 1, 86400),
        canary_min_rows=int(within("MODEL_CANARY_MIN_ROWS", "200", 1, 10**7, int)),
        canary_max_score_psi=within("MODEL_CANARY_MAX_SCORE_PSI", "0.25", 0.01, 100),
        latency_budget_ms=within("MODEL_LATENCY_BUDGET_MS", "10", 0.01, 60_000),
    )


MLFLOW_FORMS = (
    "an MLflow server's http(s)://host[:port][/path], databricks (or databricks://<profile>), "
    "or Azure ML's azureml://<region>.api.azureml.ms/mlflow/v1.0/subscriptions/..."
)


def _mlflow_tracking_uri(source: Mapping[str, str]) -> str | None:
    """MLFLOW_TRACKING_URI, when set: the MLflow that is the model registry. Credentials come
    from MLflow's own settings (DATABRICKS_HOST and DATABRICKS_TOKEN or a service principal's;
    Azure ML's through the azureml-mlflow plugin and DefaultAzureCredential), never the URI."""
    name, value = "MLFLOW_TRACKING_URI", source.get("MLFLOW_TRACKING_URI", "").strip()
    if not value:
        return None
    if value == "databricks-uc" or value.startswith("databricks-uc:"):
        raise SettingsError(
            name, "databricks-uc (Unity Catalog) names models catalog.schema.model; use databricks"
        )
    if value == "databricks" or re.fullmatch(r"databricks://[A-Za-z0-9_.-]{1,64}", value):
        return value
    if re.fullmatch(r"azureml://[A-Za-z0-9.-]+(:[0-9]{1,5})?/[!-~]+", value):
        if not _installed("azureml.mlflow"):
            raise SettingsError(name, "azureml:// needs the azureml-mlflow package installed")
        return value
    if re.search(r"[@?#]", value):  # never echoed: it may hold a credential
        raise SettingsError(
            name,
            "must hold no credentials, query or fragment: MLflow reads MLFLOW_TRACKING_TOKEN "
            "(or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD) for a server's",
        )
    try:
        parts = urlsplit(value)
        valid = parts.port is None or 0 < parts.port < 65536  # `.port` checks the number
    except ValueError:
        valid = False
    if not (
        valid
        and parts.scheme in ("http", "https")
        and parts.hostname
        and re.fullmatch(r"[!-~]+", value)
    ):
        raise SettingsError(name, f"must be {MLFLOW_FORMS}, not {value[:80]!r}")
    return value.rstrip("/")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # its parent package is missing
        return False


REAPER_SCHEDULE = "0 * * * * *"
_NCRONTAB_FIELD = r"[0-9A-Za-z*/,\-]+"


def reaper_schedule(environ: Mapping[str, str] | None = None) -> str:
    """`PIPELINE_REAPER_SCHEDULE`: the NCRONTAB (six fields, seconds first) on which orphaned
    remote runs are cancelled; every minute unless set. Read when the app is indexed, because a
    `%Setting%` in a binding has no default and would stop the app where it is not set."""
    source = os.environ if environ is None else environ
    value = " ".join(_text(source, "PIPELINE_REAPER_SCHEDULE", REAPER_SCHEDULE).split())
    if not re.fullmatch(rf"{_NCRONTAB_FIELD}( {_NCRONTAB_FIELD}){{5}}", value):
        raise SettingsError(
            "PIPELINE_REAPER_SCHEDULE",
            f"must be an NCRONTAB expression of six fields, seconds first, not {value!r}",
        )
    return value


def _refuse_embedded_in_prod(source: Mapping[str, str], settings: Settings) -> None:
    """In prod, every port must name its Azure service: an embedded adapter (the local lake,
    the devhost's event log, an emulator) would run without error and lose data."""
    if settings.environment != "prod":
        return
    if settings.lake.adapter is not Adapter.AZURE:
        raise SettingsError(
            "LAKE_URI",
            "must be an abfss:// URI in prod (ADLS Gen2); the local lake is refused: an "
            "instance's disk is neither shared nor durable",
        )
    if settings.lake.emulator_endpoint is not None:
        raise SettingsError("LAKE_EMULATOR_ENDPOINT", "must not be set in prod (an emulator)")
    if settings.events.adapter is not Adapter.AZURE:
        raise SettingsError(
            f"{EVENTHUB_CONNECTION}__fullyQualifiedNamespace",
            "must name the Event Hubs namespace in prod (<namespace>.servicebus.windows.net); "
            "the devhost's local event log is refused",
        )
    if settings.documents.adapter is not Adapter.AZURE:
        raise SettingsError(
            "COSMOS_ENDPOINT",
            "must name the Cosmos DB account in prod (https://<account>.documents.azure.com); "
            "the embedded SQLite document store is refused: an instance's disk is neither "
            "shared nor durable",
        )
    if settings.audit_checkpoints_url is None:
        raise SettingsError(
            "AUDIT_CHECKPOINTS_URL",
            "must name the blob container of the audit checkpoints in prod (time-based "
            "immutability); a file on an instance's disk is refused",
        )
    if not source.get("BATCH_ENGINE", "").strip():
        raise SettingsError(
            "BATCH_ENGINE",
            "must be set in prod: databricks, synapse, or duckdb to run the SQL in the app "
            "over the ADLS lake (it is not chosen silently)",
        )


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from the environment; raises SettingsError naming the bad setting."""
    source = os.environ if environ is None else environ
    data_dir = _data_dir(source)
    environment = _choice(source, "PLATFORM_ENVIRONMENT", "local", ("local", "dev", "test", "prod"))
    settings = Settings(
        environment=environment,
        data_dir=data_dir,
        lake=_lake(source, data_dir),
        log_level=_choice(
            source, "PLATFORM_LOG_LEVEL", "info", ("debug", "info", "warning", "error")
        ),
        batch=_batch(source),
        events=_events(source, data_dir),
        documents=_documents(source, data_dir),
        pseudonym_key=_pseudonym_key(source, environment),
        auth=_auth(source, environment, data_dir),
        audit_checkpoints_url=_audit_checkpoints(source),
        model_refresh_s=_model_refresh(source),
        mlflow_tracking_uri=_mlflow_tracking_uri(source),
        lifecycle=_lifecycle(source),
    )
    _refuse_embedded_in_prod(source, settings)
    return settings
