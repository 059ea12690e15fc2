"""The app's own code for a training on a Spark cluster's driver, which does not have this
package: the source files of every module `shared.models.training_run` imports, directly or
not, from `shared` and `embedded` (with their packages' `__init__`), in one zip that the runner
puts on `sys.path`; and the PyPI packages that code imports, pinned to the versions this app
runs (those of requirements.txt), for the cluster to install.

Imports are found in the sources, function-level ones included, so a module imported lazily
travels too; an import of anything the cluster would not have (`TRAINING_PACKAGES`, the
standard library and what Spark's runtimes have) is refused (`TrainingCodeError`) before a
job is submitted.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

ENTRY_MODULE = "shared.models.training_run"
OWN_PACKAGES = ("shared", "embedded")
# The PyPI packages the training code needs beyond Spark's runtime, and the import each gives.
TRAINING_PACKAGES = {
    "deltalake": "deltalake",
    "duckdb": "duckdb",
    "lightgbm": "lightgbm",
    "scikit-learn": "sklearn",
    "onnx": "onnx",
    "onnxmltools": "onnxmltools",
    "onnxruntime": "onnxruntime",
    "msgspec": "msgspec",
    "azure-core": "azure.core",
    "azure-identity": "azure.identity",
    "azure-storage-blob": "azure.storage.blob",
    "pyjwt": "jwt",
    "cryptography": "cryptography",
}
SPARK_RUNTIME = ("numpy", "pyarrow", "pandas")  # what Databricks and Synapse runtimes have
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # every entry's: the same code makes the same bytes


class TrainingCodeError(ValueError):
    """The training code imports what the cluster would not have, or in a form that cannot be
    followed (a relative import)."""


def training_libraries() -> tuple[str, ...]:
    """The training code's PyPI requirements, pinned to the versions this app runs."""
    return tuple(f"{name}=={version(name)}" for name in TRAINING_PACKAGES)


def training_modules(entry: str = ENTRY_MODULE) -> dict[str, Path]:
    """Each module the entry imports, directly or not, from the app's own packages, by name
    (packages by their `__init__`), in name order."""
    roots = {name: _root(name) for name in OWN_PACKAGES}
    found: dict[str, Path] = {}
    pending = [entry]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        path = _source(roots, name)
        if path is None:
            if name == entry:
                raise TrainingCodeError(f"no module {name} in {', '.join(OWN_PACKAGES)}")
            continue  # `from package.module import name`: a name, not a module
        found[name] = path
        parts = name.split(".")
        pending.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        pending.extend(_own_imports(name, path.read_text(encoding="utf-8")))
    return dict(sorted(found.items()))


def training_code(entry: str = ENTRY_MODULE) -> bytes:
    """The zip of the entry's modules, as `<package>/<module>.py` entries."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, path in training_modules(entry).items():
            member = name.replace(".", "/") + (
                "/__init__.py" if path.name == "__init__.py" else ".py"
            )
            info = zipfile.ZipInfo(member, _ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def _root(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise TrainingCodeError(f"{package} is not a package here")
    return Path(next(iter(spec.submodule_search_locations)))


def _source(roots: dict[str, Path], name: str) -> Path | None:
    """The module's source file, found on disk (nothing is imported), or None."""
    top, _, rest = name.partition(".")
    folder = roots[top].joinpath(*rest.split(".")) if rest else roots[top]
    package = folder / "__init__.py"
    if package.is_file():
        return package
    module = folder.with_suffix(".py")
    return module if rest and module.is_file() else None


def _own_imports(name: str, source: str) -> list[str]:
    """The app's modules a source imports (and, for `from m import n`, `m.n`, which may be a
    module); anything else must be the standard library's or the cluster's."""
    own: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level or node.module is None:
                raise TrainingCodeError(f"{name}: a relative import")
            imported = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for module in imported:
            top = module.partition(".")[0]
            if top in OWN_PACKAGES:
                own.append(module)
            elif not _on_cluster(module):
                raise TrainingCodeError(
                    f"{name} imports {module}, which the cluster does not have: add its PyPI "
                    "package to TRAINING_PACKAGES (pinned in requirements.txt)"
                )
    return own


def _on_cluster(module: str) -> bool:
    top = module.partition(".")[0]
    if top in sys.stdlib_module_names or top in SPARK_RUNTIME:
        return True
    return any(
        module == given or module.startswith(f"{given}.") or given.startswith(f"{module}.")
        for given in TRAINING_PACKAGES.values()
    )
