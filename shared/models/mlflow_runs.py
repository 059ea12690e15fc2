"""MLflow's experiments and runs as the MLflow registry and its model files use them: one
experiment per model, runs found by the platform's run id, and MLflow's errors translated.

A run is found by a tag, `platform.run_key`, the SHA-256 of the platform's run id (the
training's; the whole id is in `platform.run_id` and, cut to 250 characters, the run's name):
the hash is hex, so a hostile run id never reaches a search filter. Training's files go to the
first run of an id; each registered version gets a run of its own (`mlflow_registry.py`).
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import requests

from shared.models.mlflow_api import MlflowClient, MlflowException, Run
from shared.models.registry_checks import InvalidRegistryInput, shown
from shared.models.registry_port import RegistryUnavailable

RESERVED = "platform."  # the adapter's own tags; a caller's tag may not start so
RUN_ID_TAG, RUN_KEY_TAG = "platform.run_id", "platform.run_key"
VERSION_TAG = "platform.version"  # on a run, once a version is registered from it
NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"})
REFUSED = frozenset({"INVALID_PARAMETER_VALUE", "BAD_REQUEST"})
MAX_RUN_NAME = 250
_CACHED_RUNS = 1024
_MLFLOW_KEY = re.compile(r"[/\w.\- :]*")  # MLflow's rule for metric, param and tag keys


def experiment_name(tracking_uri: str, model: str) -> str:
    """The experiment of a model's runs: a workspace path on Databricks, a plain name
    elsewhere (Azure ML and MLflow servers)."""
    databricks = tracking_uri == "databricks" or tracking_uri.startswith("databricks://")
    return f"{'/Shared/' if databricks else ''}platform-model-{model}"


def run_key(run_id: str) -> str:
    """What a run is searched by: hex, whatever the run id holds."""
    return hashlib.sha256(run_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def check_mlflow_keys(name: str, keys: Iterable[str], *, tags: bool = False) -> None:
    """MLflow's own rule for keys (letters, digits, `_ - . / :` and spaces, no path tricks),
    checked before anything is written; a tag may not take the adapter's `platform.` prefix."""
    for key in keys:
        normal = posixpath.normpath(key)
        if (
            not _MLFLOW_KEY.fullmatch(key)
            or normal != key
            or normal == "."
            or normal.startswith(("..", "/"))
        ):
            rule = "letters, digits, '_', '-', '.', '/', ':' and spaces"
            raise InvalidRegistryInput(f"{name}: MLflow takes keys of {rule}, not {shown(key)}")
        if tags and key.startswith(RESERVED):
            raise InvalidRegistryInput(f"{name}: keys starting {RESERVED} are the registry's")


@contextmanager
def mlflow_errors(missing: Callable[[], Exception]) -> Iterator[None]:
    """MLflow's errors as the registry's: what does not exist as `missing()`, a refused input
    as InvalidRegistryInput (its message cut short: MLflow's echo the value), anything else
    (a failed or unreachable service) as RegistryUnavailable."""
    try:
        yield
    except MlflowException as error:
        if error.error_code in NOT_FOUND:
            raise missing() from error
        if error.error_code in REFUSED:
            raise InvalidRegistryInput(f"MLflow refused it: {shown(error.message)}") from error
        raise RegistryUnavailable(f"MLflow answered {error.error_code}") from error
    except requests.RequestException as error:
        reason = f"MLflow could not be reached ({type(error).__name__})"
        raise RegistryUnavailable(reason) from error


class MlflowRuns:
    """A model's experiment (made on first use) and the runs of a platform run id in it."""

    def __init__(self, client: MlflowClient, tracking_uri: str) -> None:
        self.client = client
        self.tracking_uri = tracking_uri
        self._experiments: dict[str, str] = {}
        self._files: dict[tuple[str, str], Run] = {}
        self._lock = threading.Lock()

    def experiment_id(self, model: str) -> str:
        """The id of the model's experiment, created when it does not exist yet."""
        with self._lock:
            known = self._experiments.get(model)
        if known is not None:
            return known
        name = experiment_name(self.tracking_uri, model)
        with mlflow_errors(lambda: RegistryUnavailable(f"no MLflow experiment {name}")):
            found = self.client.get_experiment_by_name(name)
            if found is not None:
                experiment = str(found.experiment_id)
            else:
                try:
                    experiment = self.client.create_experiment(name)
                except MlflowException as error:  # another process created it meanwhile
                    if error.error_code != "RESOURCE_ALREADY_EXISTS":
                        raise
                    again = self.client.get_experiment_by_name(name)
                    if again is None:
                        raise
                    experiment = str(again.experiment_id)
        with self._lock:
            self._experiments[model] = experiment
        return experiment

    def find(self, model: str, run_id: str) -> list[Run]:
        """The runs of `run_id` in the model's experiment, oldest first."""
        key = run_key(run_id)
        experiment = self.experiment_id(model)
        runs: list[Run] = []
        token: str | None = None
        with mlflow_errors(lambda: RegistryUnavailable(f"no MLflow experiment {experiment}")):
            while True:
                page = self.client.search_runs(
                    [experiment],
                    filter_string=f"tags.`{RUN_KEY_TAG}` = '{key}'",
                    order_by=["attributes.start_time ASC"],
                    page_token=token,
                )
                runs.extend(page)
                token = page.token
                if not token:
                    break
        return runs

    def create(self, model: str, run_id: str) -> Run:
        """A new run of `run_id` in the model's experiment."""
        experiment = self.experiment_id(model)
        tags = {RUN_ID_TAG: run_id, RUN_KEY_TAG: run_key(run_id)}
        with mlflow_errors(lambda: RegistryUnavailable(f"no MLflow experiment {experiment}")):
            return self.client.create_run(
                experiment, run_name=run_id[:MAX_RUN_NAME] or None, tags=tags
            )

    def first_run(self, model: str, run_id: str) -> Run | None:
        """The run holding the files of `run_id`: its first (remembered, since a run keeps
        its id and artifact URI); None before there is one."""
        with self._lock:
            known = self._files.get((model, run_id))
        if known is not None:
            return known
        runs = self.find(model, run_id)
        return self._remember(model, run_id, runs[0]) if runs else None

    def files_run(self, model: str, run_id: str) -> Run:
        """The run holding the files of `run_id`, made when there is none yet."""
        found = self.first_run(model, run_id)
        if found is not None:
            return found
        return self._remember(model, run_id, self.create(model, run_id))

    def _remember(self, model: str, run_id: str, run: Run) -> Run:
        with self._lock:
            if len(self._files) >= _CACHED_RUNS:
                self._files.pop(next(iter(self._files)))
            self._files[(model, run_id)] = run
        return run

    def version_run(self, model: str, run_id: str) -> Run:
        """The run a new version of `run_id` records its data in: the first run of the id that
        no version was registered from yet (training's, holding its files), else a new one."""
        for run in self.find(model, run_id):
            if VERSION_TAG not in run.data.tags:
                return run
        return self.create(model, run_id)
