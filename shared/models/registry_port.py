"""The model registry port, in MLflow's vocabulary: what a registered model and a version are,
the errors, the checks every adapter applies before it writes, and the `Registry` protocol that
the document registry (`registry.py`) and the MLflow one (`mlflow_registry.py`) implement."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

from shared.documents.port import Json
from shared.models.registry_checks import (
    MAX_DOCUMENT_BYTES,
    MAX_PARAM_VALUE,
    MAX_TAG_VALUE,
    InvalidRegistryInput,
    RegistryError,
    check_metrics,
    check_model_name,
    check_reasons,
    check_signature,
    check_strings,
    check_text,
    check_training_data,
    json_copy,
)

VALIDATION_STATUSES = ("none", "pending", "passed", "rejected")


class ModelNotFound(RegistryError, LookupError):
    """No registered model of that name."""


class ModelVersionNotFound(RegistryError, LookupError):
    """The model has no version of that number."""


class AliasNotFound(RegistryError, LookupError):
    """The model has no alias of that name."""


class RegistryUnavailable(Exception):
    """The registry's service failed or could not be reached (worth retrying, so it is not a
    RegistryError, which no retry fixes); the message names the service's error code."""


@dataclass(frozen=True)
class RegisteredModel:
    """A registered model: its versions are numbered 1..latest_version, without gaps."""

    name: str
    description: str
    tags: dict[str, str]
    aliases: dict[str, int]  # alias -> version
    latest_version: int
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class ModelVersion:
    """One version of a model: immutable but for its tags, description and validation."""

    name: str
    version: int
    created_at: str  # ISO 8601, UTC
    status: str
    source: str  # the artifact URI of the version's folder
    run_id: str
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]
    signature: dict[str, Json]  # inputs, outputs (and params), as MLflow's
    input_example: Json
    training_data: dict[str, int]  # table -> Delta version
    code_version: str
    validation_status: str = "none"
    validation_reasons: tuple[str, ...] = ()
    description: str = ""


class Registry(Protocol):
    """A model registry: versions numbered per model without gaps, aliases that point at them,
    tags. Every input is checked before anything is written (InvalidRegistryInput, naming the
    field); lookups fail with ModelNotFound, ModelVersionNotFound or AliasNotFound."""

    def create_version(
        self,
        name: str,
        *,
        source: str,
        run_id: str,
        metrics: Mapping[str, float],
        params: Mapping[str, str],
        signature: Mapping[str, Json],
        input_example: Json,
        training_data: Mapping[str, int],
        code_version: str,
        tags: Mapping[str, str] | None = None,
        description: str = "",
    ) -> ModelVersion:
        """Register the next version of `name` (and the model, with its first)."""
        ...

    def get_model(self, name: str) -> RegisteredModel:
        """The registered model; ModelNotFound."""
        ...

    def get_version(self, name: str, version: int) -> ModelVersion:
        """One version; ModelVersionNotFound."""
        ...

    def list_models(self) -> list[RegisteredModel]:
        """Every registered model, by name."""
        ...

    def list_versions(self, name: str) -> list[ModelVersion]:
        """The model's versions, newest first; ModelNotFound."""
        ...

    def set_alias(self, name: str, alias: str, version: int) -> RegisteredModel:
        """Point `alias` at an existing version, moving it if it pointed at another."""
        ...

    def delete_alias(self, name: str, alias: str) -> RegisteredModel:
        """Remove `alias`; removing an alias the model does not have changes nothing."""
        ...

    def get_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        """The version `alias` points at; AliasNotFound."""
        ...

    def set_model_tag(self, name: str, key: str, value: str) -> RegisteredModel:
        """Set one tag of the registered model."""
        ...

    def set_model_description(self, name: str, description: str) -> RegisteredModel:
        """Set the registered model's description."""
        ...

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> ModelVersion:
        """Set one tag of a version."""
        ...

    def set_version_description(self, name: str, version: int, description: str) -> ModelVersion:
        """Set a version's description."""
        ...

    def set_validation_status(
        self, name: str, version: int, status: str, reasons: Sequence[str]
    ) -> ModelVersion:
        """Record a version's validation: one of VALIDATION_STATUSES, and the reasons."""
        ...


def checked_version(
    name: str,
    *,
    source: str,
    run_id: str,
    metrics: Mapping[str, float],
    params: Mapping[str, str],
    signature: Mapping[str, Json],
    input_example: Json,
    training_data: Mapping[str, int],
    code_version: str,
    tags: Mapping[str, str] | None,
    description: str,
) -> ModelVersion:
    """The version to register, every input checked (InvalidRegistryInput, naming the field),
    its size included, so that what one adapter accepts the other does too; its number and
    creation time are the adapter's to give."""
    draft = ModelVersion(
        name=check_model_name(name),
        version=0,
        created_at="",
        status="READY",
        source=check_text("source", source, required=True),
        run_id=check_text("run_id", run_id),
        metrics=check_metrics(metrics),
        params=check_strings("params", params, MAX_PARAM_VALUE),
        tags=check_strings("tags", {} if tags is None else tags, MAX_TAG_VALUE),
        signature=check_signature(signature),
        input_example=json_copy("input_example", input_example),
        training_data=check_training_data(training_data),
        code_version=check_text("code_version", code_version),
        description=check_text("description", description),
    )
    fields = asdict(draft) | {"validation_reasons": []}
    if len(json.dumps(fields, ensure_ascii=False).encode()) > MAX_DOCUMENT_BYTES:
        raise InvalidRegistryInput(f"the version is over {MAX_DOCUMENT_BYTES} bytes")
    return draft


def check_validation(status: str, reasons: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """A validation status of VALIDATION_STATUSES and its reasons, checked."""
    if status not in VALIDATION_STATUSES:
        statuses = ", ".join(VALIDATION_STATUSES)
        raise InvalidRegistryInput(f"validation status is one of {statuses}")
    return status, check_reasons(reasons)
