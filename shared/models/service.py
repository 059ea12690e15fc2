"""The models as the platform serves them: the registry, the model files and training, wired
once per process, and the answers of the models API (`functions/models.py`)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from shared.models.artifacts import ArtifactStore
from shared.models.registry import ModelVersion, RegisteredModel, Registry
from shared.models.training import MATURITY_LIMITS_H, ONNX_FILE, TRAINERS, ModelTraining

MAX_BODY_BYTES = 4096
COMMENT_LIMIT = 500
_VERSION = re.compile(r"[1-9][0-9]{0,8}")
SOURCE = re.compile(r"(silver|gold)\.([a-z][a-z0-9_]{0,62})")  # a table batch scoring reads


class BadModelRequest(ValueError):
    """A models API request that cannot be used; the message says why (400)."""


@dataclass
class Models:
    registry: Registry
    artifacts: ArtifactStore
    training: ModelTraining

    def onnx_file(self, name: str, version: int) -> bytes:
        """A version's ONNX graph (ModelVersionNotFound, ArtifactNotFound)."""
        found = self.registry.get_version(name, version)
        return self.artifacts.get(f"{name}/runs/{found.run_id}/{ONNX_FILE}")


def known_model(name: str) -> bool:
    return name in TRAINERS


def parse_version(text: str) -> int:
    if not _VERSION.fullmatch(text):
        raise BadModelRequest("a version is a whole number from 1")
    return int(text)


def parse_training(body: bytes) -> dict[str, Any]:
    """A training request's options: an empty body, or `{"label_maturity_hours": h}`."""
    options = _json_object(body)
    unknown = sorted(set(options) - {"label_maturity_hours"})
    if unknown:
        raise BadModelRequest(f"unknown field {unknown[0][:64]!r}: only label_maturity_hours")
    if "label_maturity_hours" not in options:
        return {}
    hours = options["label_maturity_hours"]
    low, high = MATURITY_LIMITS_H
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not low <= hours <= high:
        raise BadModelRequest(f"label_maturity_hours is a number from {low:g} to {high:g}")
    return {"label_maturity_hours": float(hours)}


def model_summary(model: RegisteredModel) -> dict[str, Any]:
    return {
        "name": model.name,
        "description": model.description,
        "latest_version": model.latest_version,
        "aliases": dict(model.aliases),
        "tags": dict(model.tags),
    }


def version_summary(version: ModelVersion) -> dict[str, Any]:
    return {
        "version": version.version,
        "created_at": version.created_at,
        "status": version.status,
        "run_id": version.run_id,
        "source": version.source,
        "metrics": dict(version.metrics),
        "params": dict(version.params),
        "tags": dict(version.tags),
        "signature": version.signature,
        "input_example": version.input_example,
        "training_data": dict(version.training_data),
        "code_version": version.code_version,
        "validation_status": version.validation_status,
        "validation_reasons": list(version.validation_reasons),
    }


def parse_batch_scoring(body: bytes) -> dict[str, Any]:
    """A batch scoring request's options: an empty body, or `{"version": n, "source":
    "<silver|gold>.<table>"}`, each optional (the champion; the model's silver table)."""
    options = _json_object(body)
    unknown = sorted(set(options) - {"version", "source"})
    if unknown:
        raise BadModelRequest(f"unknown field {unknown[0][:64]!r}: only version and source")
    found: dict[str, Any] = {}
    if "version" in options:
        version = options["version"]
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version < 10**9:
            raise BadModelRequest("version is a whole number from 1")
        found["version"] = version
    if "source" in options:
        source = options["source"]
        if not isinstance(source, str) or not SOURCE.fullmatch(source):
            raise BadModelRequest("source is <silver|gold>.<table>, in lower case")
        found["source"] = source
    return found


def parse_approval(body: bytes) -> dict[str, str]:
    """An approval: `{"decision": "approve" | "reject", "comment": "..."}` (the comment
    optional, at most `COMMENT_LIMIT` characters; it is scrubbed before it is stored)."""
    options = _json_object(body)
    unknown = sorted(set(options) - {"decision", "comment"})
    if unknown:
        raise BadModelRequest(f"unknown field {unknown[0][:64]!r}: only decision and comment")
    decision = options.get("decision")
    if decision not in ("approve", "reject"):
        raise BadModelRequest("decision is approve or reject")
    comment = options.get("comment", "")
    if not isinstance(comment, str) or len(comment) > COMMENT_LIMIT:
        raise BadModelRequest(f"comment is text of at most {COMMENT_LIMIT} characters")
    return {"decision": str(decision), "comment": comment}


def _json_object(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_BODY_BYTES:
        raise BadModelRequest(f"the body is over {MAX_BODY_BYTES} bytes")
    if not body:  # no body: no options (a body of blanks is not JSON, and is refused)
        return {}
    try:
        options = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadModelRequest(f"the body is not JSON: {error}") from None
    if not isinstance(options, dict):
        raise BadModelRequest("the body is a JSON object")
    return options
