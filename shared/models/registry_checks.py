"""What the model registry takes from outside, checked: names, aliases, versions, tags, metrics,
JSON; each refusal an `InvalidRegistryInput` naming the field, never echoing a long value."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from shared.documents.port import Json

MAX_KEY, MAX_TAG_VALUE, MAX_PARAM_VALUE = 250, 5000, 6000  # MLflow's limits
MAX_TEXT = 5000  # descriptions, sources, run ids, code versions
MAX_JSON_BYTES = 256 * 1024  # a signature, an input example
MAX_DOCUMENT_BYTES = 1_900_000  # under Cosmos DB's 2 MiB, with room for system properties
MAX_REASONS, MAX_REASON = 100, 1000
_MODEL_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_VERSION_LIKE = re.compile(r"[vV][0-9]+")  # and `latest`: aliases that would read as versions
_SIGNATURE_KEYS = frozenset({"inputs", "outputs", "params"})


class RegistryError(Exception):
    """Base of the registry's errors."""


class InvalidRegistryInput(RegistryError, ValueError):
    """A name, tag, metric or other input the registry refuses; the message names the field."""


def check_size(document: dict[str, Json]) -> dict[str, Json]:
    if len(json.dumps(document, ensure_ascii=False).encode()) > MAX_DOCUMENT_BYTES:
        raise InvalidRegistryInput(f"the {document['type']} is over {MAX_DOCUMENT_BYTES} bytes")
    return document


def shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:40]}…"


def check_model_name(name: object) -> str:
    if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name):
        raise InvalidRegistryInput(f"model name {shown(name)} is not [a-z][a-z0-9_-]{{0,63}}")
    return name


def check_alias(alias: object) -> str:
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        raise InvalidRegistryInput(f"alias {shown(alias)} is not [A-Za-z][A-Za-z0-9_-]{{0,63}}")
    if _VERSION_LIKE.fullmatch(alias) or alias.lower() == "latest":
        raise InvalidRegistryInput(f"alias {alias} is reserved: it reads as a version")
    return alias


def check_version(version: object) -> int:
    if isinstance(version, int) and is_whole(version, 1):
        return version
    raise InvalidRegistryInput(f"version {shown(version)} is not a positive integer")


def check_text(name: str, value: object, *, required: bool = False) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT or (required and not value):
        empty = "non-empty " if required else ""
        raise InvalidRegistryInput(f"{name} is a {empty}string of at most {MAX_TEXT} characters")
    return value


def check_entries(
    name: str, values: object, fits: Callable[[Any], bool], rule: str
) -> dict[str, Any]:
    """A copy of a mapping whose keys are short strings and whose values `fit` the `rule`."""
    if not isinstance(values, Mapping):
        raise InvalidRegistryInput(f"{name} is a mapping, not a {type(values).__name__}")
    for key, value in values.items():
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY:
            raise InvalidRegistryInput(f"{name}: a key is a string of 1 to {MAX_KEY} characters")
        if not fits(value):
            raise InvalidRegistryInput(f"{name}[{shown(key)}] is not {rule}")
    return dict(values)


def check_strings(name: str, values: object, limit: int) -> dict[str, str]:
    fits = lambda value: isinstance(value, str) and len(value) <= limit  # noqa: E731
    return check_entries(name, values, fits, f"a string of at most {limit} characters")


def check_metrics(values: object) -> dict[str, float]:
    checked = check_entries("metrics", values, is_finite, "a finite number")
    return {key: float(value) for key, value in checked.items()}


def check_training_data(values: object) -> dict[str, int]:
    return check_entries(
        "training_data", values, is_whole, "a Delta table version (an integer >= 0)"
    )


def is_finite(value: object) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def is_whole(value: object, least: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def check_signature(value: object) -> dict[str, Json]:
    if not isinstance(value, Mapping) or not set(value) <= _SIGNATURE_KEYS:
        raise InvalidRegistryInput("signature is a mapping of inputs, outputs and params")
    checked: dict[str, Json] = json_copy("signature", value)
    return checked


def json_copy(name: str, value: object) -> Json:
    """A JSON copy of `value` (finite numbers, string keys), at most MAX_JSON_BYTES."""
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as error:
        raise InvalidRegistryInput(f"{name} is not JSON ({type(error).__name__})") from None
    if len(text.encode()) > MAX_JSON_BYTES:
        raise InvalidRegistryInput(f"{name} is over {MAX_JSON_BYTES} bytes of JSON")
    return json.loads(text)


def check_reasons(reasons: object) -> tuple[str, ...]:
    if (
        isinstance(reasons, Sequence)
        and not isinstance(reasons, str)
        and len(reasons) <= MAX_REASONS
    ):
        if all(isinstance(reason, str) and len(reason) <= MAX_REASON for reason in reasons):
            return tuple(reasons)
    rule = f"at most {MAX_REASONS} strings of at most {MAX_REASON} characters"
    raise InvalidRegistryInput(f"reasons are {rule}")
