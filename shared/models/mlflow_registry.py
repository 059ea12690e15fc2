"""The model registry on MLflow (`MLFLOW_TRACKING_URI`: Azure ML, Databricks or an MLflow
server), through the `mlflow` client, with the document registry's behaviour and errors.

What goes where (MLflow's own names where it has them):

- registered model: its description, tags and aliases (`set_registered_model_alias`);
- model version: numbered by MLflow; its `source` is its run's artifact URI; its tags and
  description; the validation status and reasons as the version tag `platform.validation`
  (JSON);
- the version's run (in the experiment `platform-model-<name>`, named by the platform's run
  id; `mlflow_runs.py`): its metrics, params, training data, source, code version, signature
  and input example (`mlflow_run_data.py`), and training's files (`model.onnx`, the native
  model, `card.json`, through `MlflowArtifacts`).

Inputs are checked as the document registry checks them, and keys by MLflow's own rule too,
before anything is written. MLflow's errors become the registry's (`mlflow_runs.py`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shared.documents.port import Json
from shared.models.artifacts import ArtifactStore
from shared.models.mlflow_api import (
    MlflowClient,
    MlflowException,
    MlflowModel,
    MlflowVersion,
    Run,
)
from shared.models.mlflow_artifacts import MlflowArtifacts
from shared.models.mlflow_run_data import (
    CODE_VERSION_TAG,
    SOURCE_TAG,
    iso,
    json_value,
    read_json,
    record,
    training_data,
    visible,
)
from shared.models.mlflow_runs import (
    NOT_FOUND,
    RUN_ID_TAG,
    VERSION_TAG,
    MlflowRuns,
    check_mlflow_keys,
    mlflow_errors,
)
from shared.models.registry_checks import (
    MAX_TAG_VALUE,
    InvalidRegistryInput,
    RegistryError,
    check_alias,
    check_model_name,
    check_strings,
    check_text,
    check_version,
)
from shared.models.registry_port import (
    AliasNotFound,
    ModelNotFound,
    ModelVersion,
    ModelVersionNotFound,
    RegisteredModel,
    RegistryUnavailable,
    check_validation,
    checked_version,
)

VALIDATION_TAG = "platform.validation"
MAX_VERSION_TAG = 100_000  # MLflow's limit of a version tag's value
PAGE_SIZE, READERS = 100, 8


def open_mlflow(tracking_uri: str, lake: ArtifactStore) -> tuple[MlflowRegistry, MlflowArtifacts]:
    """The registry and the model files on the MLflow at `tracking_uri` (its model registry at
    the same URI: on Databricks, the workspace's, not Unity Catalog's); files other than a
    run's (batch scoring's job payloads) stay in `lake`."""
    runs = MlflowRuns(MlflowClient(tracking_uri, registry_uri=tracking_uri), tracking_uri)
    return MlflowRegistry(runs), MlflowArtifacts(runs, lake)


class MlflowRegistry:
    """The `Registry` on an MLflow tracking server and its model registry."""

    def __init__(self, runs: MlflowRuns, *, page_size: int = PAGE_SIZE) -> None:
        self.runs = runs
        self.client = runs.client
        self.page_size = page_size

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
        """Register the next version of `name` (and the model, with its first), its data in a
        run of its own (training's run, when it is the first version of it)."""
        draft = checked_version(
            name,
            source=source,
            run_id=run_id,
            metrics=metrics,
            params=params,
            signature=signature,
            input_example=input_example,
            training_data=training_data,
            code_version=code_version,
            tags=tags,
            description=description,
        )
        check_mlflow_keys("metrics", draft.metrics)
        check_mlflow_keys("params", draft.params)
        check_mlflow_keys("tags", draft.tags, tags=True)
        run = self.runs.version_run(name, run_id)
        record(self.client, run, draft)
        found = self._register(run, draft)
        with mlflow_errors(lambda: ModelVersionNotFound(f"model {name} lost its new version")):
            self.client.set_tag(run.info.run_id, VERSION_TAG, str(found.version))
            self.client.set_terminated(run.info.run_id)
        return self._version(found)

    def get_model(self, name: str) -> RegisteredModel:
        """The registered model; ModelNotFound."""
        check_model_name(name)
        with mlflow_errors(lambda: ModelNotFound(f"no registered model {name}")):
            return self._model(self.client.get_registered_model(name))

    def get_version(self, name: str, version: int) -> ModelVersion:
        """One version; ModelVersionNotFound (ModelNotFound without the model)."""
        check_version(version)
        check_model_name(name)
        with mlflow_errors(lambda: self._missing(name, version)):
            found = self.client.get_model_version(name, str(version))
        return self._version(found)

    def list_models(self) -> list[RegisteredModel]:
        """Every registered model, by name."""
        found: list[MlflowModel] = []
        token: str | None = None
        with mlflow_errors(lambda: RegistryUnavailable("MLflow lost its registered models")):
            while True:
                page = self.client.search_registered_models(
                    max_results=self.page_size, page_token=token
                )
                found.extend(page)
                token = page.token
                if not token:
                    break
        return sorted(map(self._model, found), key=lambda model: model.name)

    def list_versions(self, name: str) -> list[ModelVersion]:
        """The model's versions, newest first; ModelNotFound."""
        self.get_model(name)
        found: list[MlflowVersion] = []
        token: str | None = None
        with mlflow_errors(lambda: ModelNotFound(f"no registered model {name}")):
            while True:
                page = self.client.search_model_versions(
                    f"name = '{name}'",  # checked: [a-z][a-z0-9_-]*
                    max_results=self.page_size,
                    order_by=["version_number DESC"],
                    page_token=token,
                )
                found.extend(page)
                token = page.token
                if not token:
                    break
        with ThreadPoolExecutor(READERS) as readers:  # a run (and maybe a file) each
            return list(readers.map(self._version, found))

    def set_alias(self, name: str, alias: str, version: int) -> RegisteredModel:
        """Point `alias` at an existing version, moving it if it pointed at another."""
        check_alias(alias)
        check_version(version)
        check_model_name(name)
        with mlflow_errors(lambda: self._missing(name, version)):
            self.client.set_registered_model_alias(name, alias, str(version))
        return self.get_model(name)

    def delete_alias(self, name: str, alias: str) -> RegisteredModel:
        """Remove `alias`; removing an alias the model does not have changes nothing."""
        check_alias(alias)
        check_model_name(name)
        with mlflow_errors(lambda: ModelNotFound(f"no registered model {name}")):
            self.client.delete_registered_model_alias(name, alias)
        return self.get_model(name)

    def get_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        """The version `alias` points at; AliasNotFound."""
        check_alias(alias)
        model = self.get_model(name)
        if alias not in model.aliases:
            raise AliasNotFound(f"model {name} has no alias {alias}")
        return self.get_version(name, model.aliases[alias])

    def set_model_tag(self, name: str, key: str, value: str) -> RegisteredModel:
        """Set one tag of the registered model."""
        check_mlflow_keys("tags", check_strings("tags", {key: value}, MAX_TAG_VALUE), tags=True)
        check_model_name(name)
        with mlflow_errors(lambda: ModelNotFound(f"no registered model {name}")):
            self.client.set_registered_model_tag(name, key, value)
        return self.get_model(name)

    def set_model_description(self, name: str, description: str) -> RegisteredModel:
        """Set the registered model's description."""
        text = check_text("description", description)
        check_model_name(name)
        with mlflow_errors(lambda: ModelNotFound(f"no registered model {name}")):
            self.client.update_registered_model(name, description=text)
        return self.get_model(name)

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> ModelVersion:
        """Set one tag of a version."""
        check_mlflow_keys("tags", check_strings("tags", {key: value}, MAX_TAG_VALUE), tags=True)
        return self._set_version_tag(name, version, key, value)

    def set_version_description(self, name: str, version: int, description: str) -> ModelVersion:
        """Set a version's description."""
        text = check_text("description", description)
        self._check_version(name, version)
        with mlflow_errors(lambda: self._missing(name, version)):
            self.client.update_model_version(name, str(version), description=text)
        return self.get_version(name, version)

    def set_validation_status(
        self, name: str, version: int, status: str, reasons: Sequence[str]
    ) -> ModelVersion:
        """Record a version's validation (one tag, so readers see status and reasons
        together)."""
        status, why = check_validation(status, reasons)
        value = json.dumps({"status": status, "reasons": list(why)}, ensure_ascii=False)
        if len(value) > MAX_VERSION_TAG:
            raise InvalidRegistryInput(f"reasons are over MLflow's {MAX_VERSION_TAG} characters")
        return self._set_version_tag(name, version, VALIDATION_TAG, value)

    # Writing a version

    def _register(self, run: Run, draft: ModelVersion) -> MlflowVersion:
        """The model version of `run`; the registered model is created with its first."""
        name = draft.name
        arguments: dict[str, Any] = {
            "source": run.info.artifact_uri,
            "run_id": run.info.run_id,
            "tags": draft.tags,
            "description": draft.description,
        }
        with mlflow_errors(lambda: ModelNotFound(f"no registered model {name}")):
            try:
                return self.client.create_model_version(name, **arguments)
            except MlflowException as error:
                if error.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
            try:
                self.client.create_registered_model(name)
            except MlflowException as error:  # another creator registered it meanwhile
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            return self.client.create_model_version(name, **arguments)

    def _set_version_tag(self, name: str, version: int, key: str, value: str) -> ModelVersion:
        self._check_version(name, version)
        with mlflow_errors(lambda: self._missing(name, version)):
            self.client.set_model_version_tag(name, str(version), key, value)
        return self.get_version(name, version)

    # Reading

    def _model(self, found: MlflowModel) -> RegisteredModel:
        latest = [int(version.version) for version in found.latest_versions or []]
        return RegisteredModel(
            name=found.name,
            description=found.description or "",
            tags=visible(found.tags),
            aliases={alias: int(version) for alias, version in (found.aliases or {}).items()},
            latest_version=max(latest) if latest else self._latest(found.name),
            created_at=iso(found.creation_timestamp),
            updated_at=iso(found.last_updated_timestamp or found.creation_timestamp),
        )

    def _latest(self, name: str) -> int:
        """The highest version number, for a registry that lists no latest versions."""
        with mlflow_errors(lambda: ModelNotFound(f"no registered model {name}")):
            page = self.client.search_model_versions(
                f"name = '{name}'", max_results=1, order_by=["version_number DESC"]
            )
        return max((int(version.version) for version in page), default=0)

    def _version(self, found: MlflowVersion) -> ModelVersion:
        run = self._run(found.run_id) if found.run_id else None
        data = run.data if run is not None else None
        tags: dict[str, str] = dict(data.tags) if data is not None else {}
        validation = json_value(found.tags.get(VALIDATION_TAG), {})
        validation = validation if isinstance(validation, dict) else {}
        reasons = validation.get("reasons")
        return ModelVersion(
            name=found.name,
            version=int(found.version),
            created_at=iso(found.creation_timestamp),
            status=str(found.status),
            source=tags.get(SOURCE_TAG, found.source or ""),
            run_id=tags.get(RUN_ID_TAG, found.run_id or ""),
            metrics={key: float(value) for key, value in (data.metrics if data else {}).items()},
            params=dict(data.params) if data is not None else {},
            tags=visible(found.tags),
            signature=read_json(self.client, run, "signature", {}),
            input_example=read_json(self.client, run, "input_example", None),
            training_data=training_data(run),
            code_version=tags.get(CODE_VERSION_TAG, ""),
            validation_status=str(validation.get("status", "none")),
            validation_reasons=tuple(map(str, reasons if isinstance(reasons, list) else [])),
            description=found.description or "",
        )

    def _run(self, run_id: str) -> Run | None:
        """The version's run; None when it was deleted in MLflow (the version then reads
        without its run's data)."""
        with mlflow_errors(lambda: RegistryUnavailable(f"MLflow lost the run {run_id}")):
            try:
                return self.client.get_run(run_id)
            except MlflowException as error:
                if error.error_code not in NOT_FOUND:
                    raise
        return None

    def _check_version(self, name: str, version: int) -> None:
        check_version(version)
        check_model_name(name)

    def _missing(self, name: str, version: int) -> RegistryError | RegistryUnavailable:
        """What a missing version means: no such model, or no such version of it."""
        try:
            self.client.get_registered_model(name)
        except MlflowException as error:
            if error.error_code in NOT_FOUND:
                return ModelNotFound(f"no registered model {name}")
            return RegistryUnavailable(f"MLflow answered {error.error_code}")
        return ModelVersionNotFound(f"model {name} has no version {version}")
