"""The model registry on the document store (the embedded default, and Cosmos DB in Azure):
versions, aliases and tags as documents, in MLflow's vocabulary (`registry_port.py`)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, fields, replace
from datetime import UTC, datetime
from typing import Any

from shared.documents.port import (
    BatchOperation,
    Condition,
    ContainerSpec,
    DocumentConflict,
    DocumentContainer,
    DocumentNotFound,
    Json,
    PreconditionFailed,
    Query,
)
from shared.models.registry_checks import (
    MAX_TAG_VALUE,
    check_alias,
    check_model_name,
    check_size,
    check_strings,
    check_text,
    check_version,
)
from shared.models.registry_checks import InvalidRegistryInput as InvalidRegistryInput
from shared.models.registry_checks import RegistryError as RegistryError
from shared.models.registry_port import VALIDATION_STATUSES as VALIDATION_STATUSES
from shared.models.registry_port import AliasNotFound as AliasNotFound
from shared.models.registry_port import ModelNotFound as ModelNotFound
from shared.models.registry_port import ModelVersion as ModelVersion
from shared.models.registry_port import ModelVersionNotFound as ModelVersionNotFound
from shared.models.registry_port import RegisteredModel as RegisteredModel
from shared.models.registry_port import Registry as Registry
from shared.models.registry_port import RegistryUnavailable as RegistryUnavailable
from shared.models.registry_port import check_validation, checked_version

MODELS_CONTAINER = ContainerSpec("models", "/model")  # one logical partition per model name
MODEL_ID = "model"  # the registered model's document; each version's is `version_id(n)`
MAX_ATTEMPTS, PAGE_SIZE = 20, 100
_MAX_BACKOFF_S = 0.05


class RegistryContended(RegistryError):
    """Other writers changed the document before each of `MAX_ATTEMPTS` attempts."""


class VersionExists(RegistryError):
    """A version document holds the next number already; versions are never overwritten."""


def version_id(version: int) -> str:
    """The id of a version's document."""
    return f"v{version:06d}"


class ModelRegistry:
    """The registry on a document container (`MODELS_CONTAINER`). Each model's partition holds
    its `model` document (tags, aliases, the latest version number) and one document per
    version. A version is created in one transactional batch with the model document, which is
    replaced on its etag, so concurrent creators get consecutive numbers; a writer that loses
    a race reads again and retries. `clock` gives seconds since the epoch."""

    def __init__(
        self,
        container: DocumentContainer,
        clock: Callable[[], float] = time.time,
        *,
        sleep: Callable[[float], None] = time.sleep,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.container = container
        self.page_size = page_size
        self._clock = clock
        self._sleep = sleep

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
        """Register the next version of `name` (and the model, with its first); VersionExists
        when a version document is in the way, RegistryContended when others kept winning."""
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
        for attempt in range(MAX_ATTEMPTS):
            self._backoff(attempt)
            now, current = self._now(), self._find_model(name)
            if current is None:
                model = RegisteredModel(name, "", {}, {}, 1, now, now)
                head = BatchOperation("create", document=_model_document(model))
            else:
                model = _registered_model(current)
                model = replace(model, latest_version=model.latest_version + 1, updated_at=now)
                etag = str(current["_etag"])
                head = BatchOperation("replace", document=_model_document(model), if_match=etag)
            version = replace(draft, version=model.latest_version, created_at=now)
            try:
                self.container.batch(
                    name, [head, BatchOperation("create", document=_version_document(version))]
                )
            except PreconditionFailed:  # another creator went first
                continue
            except DocumentConflict as error:  # the version's create, unless the model's was
                if current is None and self._find_model(name) is not None:
                    continue
                message = f"model {name} has a version {version.version} document already"
                raise VersionExists(message) from error
            return version
        raise RegistryContended(f"model {name} stayed contended for {MAX_ATTEMPTS} attempts")

    def get_model(self, name: str) -> RegisteredModel:
        """The registered model; ModelNotFound."""
        return _registered_model(self._read_model(name))

    def get_version(self, name: str, version: int) -> ModelVersion:
        """One version; ModelVersionNotFound."""
        return _model_version(self._read_version(name, version))

    def list_models(self) -> list[RegisteredModel]:
        """Every registered model, by name."""
        where = [Condition("/type", "=", "model")]
        query = Query(where=where, cross_partition=True, page_size=self.page_size)
        return sorted(map(_registered_model, self._all(query)), key=lambda model: model.name)

    def list_versions(self, name: str) -> list[ModelVersion]:
        """The model's versions, newest first; ModelNotFound."""
        self._read_model(name)
        where = [Condition("/type", "=", "version")]
        newest = [("/version", True)]
        query = Query(where=where, order_by=newest, partition_key=name, page_size=self.page_size)
        return [_model_version(document) for document in self._all(query)]

    def set_alias(self, name: str, alias: str, version: int) -> RegisteredModel:
        """Point `alias` at an existing version, moving it if it pointed at another."""
        check_alias(alias)
        check_version(version)

        def point(model: RegisteredModel) -> RegisteredModel:
            if version > model.latest_version:  # versions are 1..latest, never deleted
                raise ModelVersionNotFound(f"model {name} has no version {version}")
            return replace(model, aliases={**model.aliases, alias: version})

        return self._update_model(name, point)

    def delete_alias(self, name: str, alias: str) -> RegisteredModel:
        """Remove `alias`; removing an alias the model does not have changes nothing."""
        check_alias(alias)

        def remove(model: RegisteredModel) -> RegisteredModel:
            return replace(model, aliases={k: v for k, v in model.aliases.items() if k != alias})

        return self._update_model(name, remove)

    def get_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        """The version `alias` points at; AliasNotFound."""
        check_alias(alias)
        model = self.get_model(name)
        if alias not in model.aliases:
            raise AliasNotFound(f"model {name} has no alias {alias}")
        return self.get_version(name, model.aliases[alias])

    def set_model_tag(self, name: str, key: str, value: str) -> RegisteredModel:
        """Set one tag of the registered model."""
        tag = check_strings("tags", {key: value}, MAX_TAG_VALUE)
        return self._update_model(name, lambda m: replace(m, tags={**m.tags, **tag}))

    def set_model_description(self, name: str, description: str) -> RegisteredModel:
        """Set the registered model's description."""
        text = check_text("description", description)
        return self._update_model(name, lambda m: replace(m, description=text))

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> ModelVersion:
        """Set one tag of a version."""
        tag = check_strings("tags", {key: value}, MAX_TAG_VALUE)
        return self._update_version(name, version, lambda v: replace(v, tags={**v.tags, **tag}))

    def set_version_description(self, name: str, version: int, description: str) -> ModelVersion:
        """Set a version's description."""
        text = check_text("description", description)
        return self._update_version(name, version, lambda v: replace(v, description=text))

    def set_validation_status(
        self, name: str, version: int, status: str, reasons: Sequence[str]
    ) -> ModelVersion:
        """Record a version's validation: one of VALIDATION_STATUSES, and the reasons."""
        status, why = check_validation(status, reasons)
        return self._update_version(
            name, version, lambda v: replace(v, validation_status=status, validation_reasons=why)
        )

    # Reading and writing documents

    def _find_model(self, name: str) -> dict[str, Json] | None:
        try:
            return self.container.read(MODEL_ID, name)
        except DocumentNotFound:
            return None

    def _read_model(self, name: str) -> dict[str, Json]:
        found = self._find_model(check_model_name(name))
        if found is None:
            raise ModelNotFound(f"no registered model {name}")
        return found

    def _read_version(self, name: str, version: int) -> dict[str, Json]:
        try:
            return self.container.read(version_id(check_version(version)), check_model_name(name))
        except DocumentNotFound:
            raise ModelVersionNotFound(f"model {name} has no version {version}") from None

    def _update_model(
        self, name: str, change: Callable[[RegisteredModel], RegisteredModel]
    ) -> RegisteredModel:
        def write(document: dict[str, Json]) -> dict[str, Json]:
            model = change(_registered_model(document))
            return _model_document(replace(model, updated_at=self._now()))

        return _registered_model(self._replace(name, lambda: self._read_model(name), write))

    def _update_version(
        self, name: str, version: int, change: Callable[[ModelVersion], ModelVersion]
    ) -> ModelVersion:
        def write(document: dict[str, Json]) -> dict[str, Json]:
            return _version_document(change(_model_version(document)))

        return _model_version(self._replace(name, lambda: self._read_version(name, version), write))

    def _replace(
        self,
        name: str,
        read: Callable[[], dict[str, Json]],
        change: Callable[[dict[str, Json]], dict[str, Json]],
    ) -> dict[str, Json]:
        """Read, change and replace a document on its etag, again while others change it."""
        for attempt in range(MAX_ATTEMPTS):
            self._backoff(attempt)
            document = read()
            try:
                return self.container.replace(change(document), if_match=str(document["_etag"]))
            except PreconditionFailed:
                continue
        raise RegistryContended(f"model {name} stayed contended for {MAX_ATTEMPTS} attempts")

    def _all(self, query: Query) -> list[dict[str, Json]]:
        page = self.container.query(query)
        documents = list(page.documents)
        while page.continuation is not None:
            page = self.container.query(query, page.continuation)
            documents.extend(page.documents)
        return documents

    def _backoff(self, attempt: int) -> None:
        if attempt:
            self._sleep(random.uniform(0, min(_MAX_BACKOFF_S, 0.001 * 2**attempt)))

    def _now(self) -> str:
        moment = datetime.fromtimestamp(self._clock(), UTC)
        return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


# Documents: only the dataclasses' fields cross, so the system properties never leak.


def _model_document(model: RegisteredModel) -> dict[str, Json]:
    return check_size({"id": MODEL_ID, "model": model.name, "type": "model", **asdict(model)})


def _version_document(version: ModelVersion) -> dict[str, Json]:
    document = {"id": version_id(version.version), "model": version.name, "type": "version"}
    document |= asdict(version) | {"validation_reasons": list(version.validation_reasons)}
    return check_size(document)


def _registered_model(document: Mapping[str, Json]) -> RegisteredModel:
    return RegisteredModel(**{f.name: document[f.name] for f in fields(RegisteredModel)})


def _model_version(document: Mapping[str, Json]) -> ModelVersion:
    values: dict[str, Any] = {f.name: document[f.name] for f in fields(ModelVersion)}
    values["metrics"] = {key: float(value) for key, value in values["metrics"].items()}
    values["validation_reasons"] = tuple(values["validation_reasons"])
    return ModelVersion(**values)
