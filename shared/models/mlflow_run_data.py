"""A model version's data as its MLflow run keeps it, written within MLflow's limits and read
back: the metrics and params; the training data as dataset inputs (a `delta_table` source with
the table and its Delta version, context `training`); the tags `platform.source`,
`platform.code_version`, `platform.signature` and `platform.input_example` (JSON, or past
MLflow's 8,000 characters a tag, a JSON artifact under `platform/` named by the tag
`platform.<field>_file`); and MLflow's times as the registry writes times."""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.documents.port import Json
from shared.models.mlflow_api import (
    Dataset,
    DatasetInput,
    InputTag,
    Metric,
    MlflowClient,
    Param,
    Run,
    RunTag,
)
from shared.models.mlflow_runs import RESERVED, mlflow_errors
from shared.models.registry_port import ModelVersion, RegistryUnavailable

SOURCE_TAG, CODE_VERSION_TAG = "platform.source", "platform.code_version"
JSON_FIELDS = ("signature", "input_example")
MAX_RUN_TAG = 8000  # MLflow's limit of a run tag's value
PARAMS_AND_TAGS_PER_BATCH, METRICS_PER_BATCH, DATASETS_PER_BATCH = 100, 1000, 1000
BATCH_BYTES = 500_000  # under MLflow's 1 MB a `log_batch` request, escapes counted
TRAINING = InputTag("mlflow.data.context", "training")


def record(client: MlflowClient, run: Run, draft: ModelVersion) -> None:
    """Write the version's data to its run."""
    run_id, now = run.info.run_id, int(time.time() * 1000)
    tags = {SOURCE_TAG: draft.source, CODE_VERSION_TAG: draft.code_version}
    files: dict[str, str] = {}
    for field in JSON_FIELDS:
        text = json.dumps(getattr(draft, field), ensure_ascii=False)
        if len(text) <= MAX_RUN_TAG:
            tags[f"{RESERVED}{field}"] = text
        else:
            files[field] = text
    metrics = [Metric(key, value, now, 0) for key, value in draft.metrics.items()]
    params = [Param(key, value) for key, value in draft.params.items()]
    run_tags = [RunTag(key, value) for key, value in tags.items()]
    datasets = [dataset(table, version) for table, version in draft.training_data.items()]
    with mlflow_errors(lambda: RegistryUnavailable(f"MLflow lost the run {run_id}")):
        for metric_batch, param_batch, tag_batch in batches(metrics, params, run_tags):
            client.log_batch(run_id, metrics=metric_batch, params=param_batch, tags=tag_batch)
        for start in range(0, len(datasets), DATASETS_PER_BATCH):
            client.log_inputs(run_id, datasets[start : start + DATASETS_PER_BATCH])
        for field, text in files.items():
            path = f"platform/{field}.json"
            client.log_text(run_id, text, path)
            client.set_tag(run_id, f"{RESERVED}{field}_file", path)


def read_json(client: MlflowClient, run: Run | None, field: str, default: Json) -> Json:
    """A JSON field of the version, from its run tag or the artifact a larger one went to; the
    default for a run that has neither (a version registered outside the platform)."""
    tags = run.data.tags if run is not None else {}
    if f"{RESERVED}{field}" in tags:
        return json_value(tags[f"{RESERVED}{field}"], default)
    path = tags.get(f"{RESERVED}{field}_file")
    if run is None or path is None:
        return default
    run_id = run.info.run_id
    with (
        tempfile.TemporaryDirectory(prefix="mlflow-") as folder,
        mlflow_errors(lambda: RegistryUnavailable(f"MLflow lost {path} of {run_id}")),
    ):
        local = client.download_artifacts(run_id, path, folder)
        return json_value(Path(local).read_text(encoding="utf-8"), default)


def training_data(run: Run | None) -> dict[str, int]:
    """The Delta versions of the run's training datasets."""
    found: dict[str, int] = {}
    if run is None or run.inputs is None:
        return found
    for entry in run.inputs.dataset_inputs or []:
        source = entry.dataset
        if source.source_type != "delta_table":
            continue
        version = json_value(source.source, {})
        number = version.get("delta_table_version") if isinstance(version, dict) else None
        if isinstance(number, int) and not isinstance(number, bool):
            found[source.name] = number
    return found


def batches(
    metrics: list[Metric], params: list[Param], tags: list[RunTag]
) -> Iterator[tuple[list[Metric], list[Param], list[RunTag]]]:
    """`log_batch` requests within MLflow's limits: 100 params and tags, 1,000 metrics, 1 MB."""
    batch_params: list[Param] = []
    batch_tags: list[RunTag] = []
    size = 0
    keyed: list[tuple[str, str, Param | RunTag]] = [(p.key, p.value, p) for p in params]
    keyed += [(tag.key, tag.value, tag) for tag in tags]
    for key, value, entity in keyed:
        weight = len(json.dumps([key, value]))  # escaped, as sent
        count = len(batch_params) + len(batch_tags)
        if count and (count == PARAMS_AND_TAGS_PER_BATCH or size + weight > BATCH_BYTES):
            yield [], batch_params, batch_tags
            batch_params, batch_tags, size = [], [], 0
        if isinstance(entity, Param):
            batch_params.append(entity)
        elif isinstance(entity, RunTag):
            batch_tags.append(entity)
        size += weight
    if batch_params or batch_tags:
        yield [], batch_params, batch_tags
    for start in range(0, len(metrics), METRICS_PER_BATCH):
        yield metrics[start : start + METRICS_PER_BATCH], [], []


def dataset(table: str, version: int) -> DatasetInput:
    """A Delta table at a version, as MLflow's dataset source of that type names one."""
    source = json.dumps({"delta_table_name": table, "delta_table_version": version})
    digest = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return DatasetInput(Dataset(table, digest, "delta_table", source), tags=[TRAINING])


def json_value(text: str | None, default: Any) -> Any:
    """JSON text read, or `default` for text that is not JSON (a tag someone else wrote)."""
    try:
        return json.loads(text) if text is not None else default
    except ValueError:
        return default


def visible(tags: Mapping[str, str] | None) -> dict[str, str]:
    """Tags without the adapter's own."""
    return {key: value for key, value in (tags or {}).items() if not key.startswith(RESERVED)}


def iso(millis: int | None) -> str:
    """Milliseconds since the epoch as the document registry writes times."""
    moment = datetime.fromtimestamp(0, UTC) + timedelta(milliseconds=millis or 0)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
