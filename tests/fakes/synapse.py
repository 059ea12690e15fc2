"""A loopback Synapse workspace (dev endpoint, api-version 2020-12-01) over TLS:
`POST pipelines/{name}/createRun`, `GET pipelineruns/{runId}`, `POST pipelineruns/{runId}/cancel`.

Runs go Queued -> InProgress -> Succeeded or Failed, or Canceling -> Cancelled, on the clock.
The SDK needs a credential and refuses bearer tokens over plain HTTP, hence TLS and FakeCredential.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from azure.core.credentials import AccessToken

from tests.fakes.loopback import LoopbackServer, Request, Response
from tests.fakes.runs import FakeRun, Phase, RunBook

API_VERSION = "2020-12-01"
TOKEN = "synapse-loopback-token"
_STATUS = {
    Phase.PENDING: "Queued",
    Phase.RUNNING: "InProgress",
    Phase.SUCCEEDED: "Succeeded",
    Phase.FAILED: "Failed",
    Phase.CANCELLING: "Canceling",
    Phase.CANCELLED: "Cancelled",
}


class FakeCredential:
    """A TokenCredential that hands out the fake's token and records the scopes it was asked for."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.extend(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


def model_outcome(payload: Any, fail_models: frozenset[str] = frozenset()) -> tuple[bool, str]:
    """Succeeds unless the run's `model` parameter is in `fail_models` or is missing."""
    parameters = (payload or {}).get("parameters") or {}
    model = parameters.get("model")
    if not isinstance(model, str) or not isinstance(parameters.get("job"), str):
        return False, "Operation on target run_sql failed: missing model or job parameter"
    if model in fail_models:
        return False, f"Operation on target run_sql failed: [{model}] simulated failure"
    return True, ""


class FakeSynapse:
    """Start with `with FakeSynapse(tmp_path) as workspace:`; trust `workspace.cert_path`."""

    def __init__(
        self,
        tls_dir: Path,
        *,
        pipelines: frozenset[str] = frozenset({"platform_gold_sql"}),
        pending_s: float = 0.05,
        running_s: float | None = 0.2,
        outcome: Callable[[Any], tuple[bool, str]] | None = None,
    ) -> None:
        self.pipelines = pipelines
        self.fail_models: set[str] = set()
        self.runs = RunBook(
            outcome or (lambda payload: model_outcome(payload, frozenset(self.fail_models))),
            pending_s=pending_s,
            running_s=running_s,
        )
        self.server = LoopbackServer(tls_dir=tls_dir)
        self.server.route("POST", r"/pipelines/(?P<name>[^/]+)/createRun", self._create_run)
        self.server.route("GET", r"/pipelineruns/(?P<run_id>[^/]+)", self._get_run)
        self.server.route("POST", r"/pipelineruns/(?P<run_id>[^/]+)/cancel", self._cancel)
        self.url = self.server.url
        assert self.server.cert_path is not None
        self.cert_path: Path = self.server.cert_path

    def __enter__(self) -> FakeSynapse:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    def _check(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return _error(401, "AuthenticationFailed", "The access token is invalid.")
        if request.query.get("api-version") != API_VERSION:
            return _error(400, "InvalidApiVersion", "Unsupported api-version.")
        return None

    def _create_run(self, request: Request) -> Response:
        if problem := self._check(request):
            return problem
        name = request.params["name"]
        if name not in self.pipelines:
            return _error(404, "PipelineNotFound", f"Pipeline {name} not found.")
        run_id = str(uuid.uuid4())
        self.runs.submit(run_id, {"pipeline": name, "parameters": request.body or {}})
        return Response(202, {"runId": run_id})

    def _get_run(self, request: Request) -> Response:
        if problem := self._check(request):
            return problem
        run = self.runs.get(request.params["run_id"])
        if run is None:
            return _error(404, "PipelineRunNotFound", "Pipeline run not found.")
        return Response(200, self._describe(run))

    def _cancel(self, request: Request) -> Response:
        if problem := self._check(request):
            return problem
        if self.runs.cancel(request.params["run_id"]) is None:
            return _error(404, "PipelineRunNotFound", "Pipeline run not found.")
        return Response(200)

    def _describe(self, run: FakeRun) -> dict[str, Any]:
        now = self.runs.clock()
        phase = run.phase(now)
        end = run.end_time(now)
        return {
            "runId": run.run_id,
            "runGroupId": run.run_id,
            "isLatest": True,
            "pipelineName": run.payload["pipeline"],
            "parameters": run.payload["parameters"],
            "invokedBy": {"name": "Manual", "id": run.run_id, "invokedByType": "Manual"},
            "runStart": _iso(run.submitted),
            "runEnd": _iso(end) if end else None,
            "durationInMs": int((end - run.submitted) * 1000) if end else None,
            "status": _STATUS[phase],
            "message": run.message if phase is Phase.FAILED else "",
            "lastUpdated": _iso(now),
        }


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


def _error(status: int, code: str, message: str) -> Response:
    return Response(status, {"error": {"code": code, "message": message}})
