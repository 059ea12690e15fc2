"""Index a v2 function app: import its script file and read `app.get_functions()`."""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import sys
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devhost.appsettings import AppSettings, UnresolvedSetting
from devhost.errors import StartupError
from devhost.retry import (
    RETRY_POLICY_SETTING,
    RETRY_TRIGGERS,
    RetryPolicy,
    RetryPolicyError,
    parse_retry_policy,
)

log = logging.getLogger("devhost.indexing")

DEFAULT_SCRIPT_FILE = "function_app.py"


class IndexingError(StartupError):
    """The app cannot be indexed; the message names the function and binding at fault."""


@dataclass(frozen=True)
class BindingSpec:
    """One binding of a function, with `%Setting%` references resolved."""

    name: str
    type: str
    direction: str
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_trigger(self) -> bool:
        return self.type.lower().endswith("trigger")

    def get(self, key: str, default: Any = None) -> Any:
        return self.config.get(key, default)


@dataclass(frozen=True)
class FunctionSpec:
    """A function of the app: its name, bindings and the callable the worker would invoke."""

    name: str
    trigger: BindingSpec
    bindings: tuple[BindingSpec, ...]
    user_function: Callable[..., Any]
    parameters: Mapping[str, inspect.Parameter]
    annotations: Mapping[str, Any]
    retry: RetryPolicy | None = None

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.user_function)

    @property
    def inputs(self) -> tuple[BindingSpec, ...]:
        return tuple(
            b for b in self.bindings if b.direction in ("in", "inout") and not b.is_trigger
        )

    @property
    def outputs(self) -> tuple[BindingSpec, ...]:
        return tuple(b for b in self.bindings if b.direction in ("out", "inout"))

    def output(self, name: str) -> BindingSpec | None:
        return next((b for b in self.outputs if b.name == name), None)


def load_app(script_root: Path, script_file: str = DEFAULT_SCRIPT_FILE) -> Any:
    """Import the app's script file and return its `FunctionRegister` instance."""
    from azure.functions.decorators.function_app import FunctionRegister

    path = (script_root / script_file).resolve()
    if not path.exists():
        raise IndexingError(f"{path}: not found; a v2 app defines its functions in {script_file}")
    root = str(script_root.resolve())
    if root not in sys.path:
        sys.path.insert(0, root)
    module_name = path.stem
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise IndexingError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise IndexingError(f"{path}: importing the app failed: {error!r}") from error
    apps = [value for value in vars(module).values() if isinstance(value, FunctionRegister)]
    if len(apps) != 1:
        raise IndexingError(
            f"{path}: expected exactly one FunctionApp (or DFApp) instance, found {len(apps)}"
        )
    return apps[0]


def index_app(app: Any, settings: AppSettings) -> list[FunctionSpec]:
    """Turn `app.get_functions()` into FunctionSpecs, failing clearly on a bad binding."""
    try:
        functions = app.get_functions()
    except Exception as error:
        raise IndexingError(f"indexing failed: {error}") from error
    return [_index_function(function, settings) for function in functions]


def _index_function(function: Any, settings: AppSettings) -> FunctionSpec:
    name = function.get_function_name()
    bindings = [_index_binding(name, raw, settings) for raw in function.get_raw_bindings()]
    triggers = [b for b in bindings if b.is_trigger]
    if len(triggers) != 1:
        raise IndexingError(
            f"function {name!r}: expected one trigger binding, found {len(triggers)}"
        )
    user_function = function.get_user_function()
    signature = inspect.signature(user_function)
    parameters = dict(signature.parameters)
    for binding in bindings:
        if binding.direction == "in" and binding.name not in parameters:
            raise IndexingError(
                f"function {name!r}, binding {binding.name!r} ({binding.type}): "
                "the function has no parameter of that name"
            )
    return FunctionSpec(
        name=name,
        trigger=triggers[0],
        bindings=tuple(bindings),
        user_function=user_function,
        parameters=parameters,
        annotations=_annotations(user_function),
        retry=_retry_policy(name, function, triggers[0]),
    )


def _retry_policy(name: str, function: Any, trigger: BindingSpec) -> RetryPolicy | None:
    # The worker parses every function's policy at indexing, so a bad one fails any trigger.
    settings = getattr(function, "get_settings_dict", None)
    setting = settings(RETRY_POLICY_SETTING) if callable(settings) else None
    try:
        policy = parse_retry_policy(setting)
    except RetryPolicyError as error:
        raise IndexingError(f"function {name!r}: retry policy: {error}") from error
    if policy is not None and trigger.type.lower() not in RETRY_TRIGGERS:
        log.warning(
            "function %s: retry policies apply to timer, Event Hubs, Kafka and Cosmos DB "
            "triggers only; the policy on this %s is ignored, as in Azure",
            name,
            trigger.type,
        )
        return None
    return policy


def _index_binding(function_name: str, raw: str, settings: AppSettings) -> BindingSpec:
    document = json.loads(raw)
    binding_name = document.get("name", "?")
    binding_type = document.get("type", "?")
    try:
        config = settings.resolve_binding(document)
    except UnresolvedSetting as error:
        raise IndexingError(
            f"function {function_name!r}, binding {binding_name!r} ({binding_type}): {error}"
        ) from error
    if not isinstance(binding_type, str) or not isinstance(binding_name, str):
        raise IndexingError(f"function {function_name!r}: a binding lacks a name or a type")
    return BindingSpec(
        name=binding_name,
        type=binding_type,
        direction=str(document.get("direction", "in")).lower(),
        config=config,
    )


def _annotations(user_function: Callable[..., Any]) -> dict[str, Any]:
    """The parameters' annotations as types, string ones (`from __future__ import annotations`)
    resolved in the function's module, since they decide how parameters are bound. When one of
    them cannot be resolved (a name imported only for type checkers), the others still are."""
    try:
        return typing.get_type_hints(user_function)
    except Exception:
        raw = dict(getattr(user_function, "__annotations__", {}))
    module_globals = getattr(inspect.unwrap(user_function), "__globals__", {})
    return {name: _resolve(name, value, module_globals) for name, value in raw.items()}


def _resolve(name: str, annotation: Any, module_globals: dict[str, Any]) -> Any:
    if not isinstance(annotation, str):
        return annotation
    holder = types.SimpleNamespace(__annotations__={name: annotation})
    try:
        return typing.get_type_hints(holder, globalns=module_globals)[name]
    except Exception:
        return annotation
