"""What a batch scoring on Spark carries to a cluster that does not have this package: the
payload `shared.batch.spark_runner` reads, and the libraries it needs.

The feature code must be exactly the app's, so the payload holds the sources of the feature
set's module and of the `shared` modules it imports (dependencies first), and the runner
executes them in fresh module namespaces. That code may import only the standard library and
`msgspec` (`FeatureCodeError` otherwise), which is what the cluster has once the job's
libraries, pinned to the app's own versions (those of requirements.txt), are installed.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
from importlib.metadata import version
from typing import Any

from shared.features.base import FeatureSet

# The PyPI packages the runner imports beyond Spark's runtime (which has pandas, pyarrow and
# numpy): onnxruntime scores, msgspec holds the feature states.
SPARK_PACKAGES = ("onnxruntime", "msgspec")
CLUSTER_IMPORTS = frozenset({"msgspec"})
PAYLOAD_FORMAT = 1


class FeatureCodeError(ValueError):
    """A feature module imports what the cluster does not have, or in a form the runner
    cannot resolve."""


def spark_libraries() -> tuple[str, ...]:
    """The runner's PyPI requirements, pinned to the versions this app runs (requirements.txt
    pins them for the deployment)."""
    return tuple(f"{name}=={version(name)}" for name in SPARK_PACKAGES)


def feature_code(feature_set: FeatureSet[Any]) -> dict[str, Any]:
    """The feature set as the runner loads it: its module, its class (`entry`, made with no
    arguments) and the sources, dependencies first."""
    kind = type(feature_set)
    sources: dict[str, str] = {}
    _collect(kind.__module__, sources, ())
    return {"module": kind.__module__, "entry": kind.__qualname__, "sources": sources}


def _collect(name: str, sources: dict[str, str], chain: tuple[str, ...]) -> None:
    if name in sources:
        return
    if name in chain:
        raise FeatureCodeError(f"{' -> '.join((*chain, name))}: an import cycle")
    module = importlib.import_module(name)
    if hasattr(module, "__path__"):
        raise FeatureCodeError(f"{name} is a package: import from its modules")
    source = inspect.getsource(module)
    for imported in _imports(name, source):
        top = imported.partition(".")[0]
        if top == "shared":
            _collect(imported, sources, (*chain, name))
        elif top not in sys.stdlib_module_names and top not in CLUSTER_IMPORTS:
            raise FeatureCodeError(
                f"{name} imports {imported}, which the cluster does not have: feature code "
                f"imports the standard library, {', '.join(sorted(CLUSTER_IMPORTS))} and "
                "other feature modules only"
            )
    sources[name] = source


def _imports(name: str, source: str) -> list[str]:
    """The modules a source imports; `from shared.x import y` must name a module, not a
    package, and no import may be relative (the runner resolves neither)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("shared"):
                    raise FeatureCodeError(f"{name}: write `from {alias.name} import ...`")
                found.append(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level or node.module is None:
                raise FeatureCodeError(f"{name}: a relative import")
            found.append(node.module)
    return found


def scoring_payload(
    *,
    model: str,
    version: int,
    threshold: float,
    features: list[str],
    onnx_uri: str,
    feature_set: FeatureSet[Any],
    columns: tuple[str, ...],
    source: str,
    source_uri: str,
    source_version: int,
    output_uri: str,
    run_id: str,
    scored_at_us: int,
) -> dict[str, Any]:
    """The JSON document `spark_runner.score` reads (see its module docstring)."""
    return {
        "format": PAYLOAD_FORMAT,
        "model": model,
        "version": version,
        "threshold": threshold,
        "features": features,
        "onnx_uri": onnx_uri,
        "feature_set": feature_code(feature_set),
        "entity": feature_set.entity,
        "columns": list(columns),
        "source": source,
        "source_uri": source_uri,
        "source_version": source_version,
        "output_uri": output_uri,
        "run_id": run_id,
        "scored_at_us": scored_at_us,
    }
