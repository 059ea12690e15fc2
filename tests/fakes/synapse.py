"""A loopback Synapse workspace (dev endpoint, api-version 2020-12-01) over TLS:
`POST pipelines/{name}/createRun`, `GET pipelineruns/{runId}`, `POST pipelineruns/{runId}/cancel`,
and `POST queryPipelineRuns` (a `lastUpdatedAfter`/`lastUpdatedBefore` window, `filters` on
PipelineName, Status or RunGroupId, `orderBy`, and pages joined by `continuationToken`).

Runs go Queued -> InProgress -> Succeeded or Failed, or Canceling -> Cancelled, on the clock.
The SDK needs a credential and refuses bearer tokens over plain HTTP, hence TLS and FakeCredential.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
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
_FILTERABLE = {"PipelineName": "pipelineName", "Status": "status", "RunGroupId": "runGroupId"}
_ORDERABLE = {
    "RunStart": "runStart",
    "RunEnd": "runEnd",
    "PipelineName": "pipelineName",
    "Status": "status",
}
_OPERATORS = {
    "Equals": lambda value, values: value in values[:1],
    "NotEquals": lambda value, values: value not in values[:1],
    "In": lambda value, values: value in values,
    "NotIn": lambda value, values: value not in values,
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
        page_size: int = 100,
    ) -> None:
        self.pipelines = pipelines
        self.page_size = page_size
        self.query_failures = 0  # answer this many run queries with 503, as a busy workspace does
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
        self.server.route("POST", r"/queryPipelineRuns", self._query_runs)
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

    def created_runs(self) -> list[FakeRun]:
        """Every run `createRun` started, oldest first."""
        return sorted(self.runs.all(), key=lambda run: run.submitted)

    def _query_runs(self, request: Request) -> Response:
        if problem := self._check(request):
            return problem
        if self.query_failures > 0:
            self.query_failures -= 1
            return _error(503, "ServiceUnavailable", "The service is temporarily unavailable.")
        body = request.body if isinstance(request.body, dict) else {}
        try:
            after, before = _parse_time(body, "lastUpdatedAfter", "lastUpdatedBefore")
            offset = _offset(body.get("continuationToken"))
            keep = _filters(body.get("filters") or [])
            order = _order(body.get("orderBy") or [])
        except ValueError as error:
            return _error(400, "BadRequest", str(error))
        now = self.runs.clock()
        runs = [
            self._describe(run)
            for run in self.created_runs()
            if after <= run.last_change(now) <= before
        ]
        runs = [run for run in runs if keep(run)]
        for field, descending in reversed(order):  # stable sorts, last key first
            runs.sort(key=functools.partial(_sort_value, field), reverse=descending)
        page = runs[offset : offset + self.page_size]
        answer: dict[str, Any] = {"value": page}
        if offset + self.page_size < len(runs):
            answer["continuationToken"] = _token(offset + self.page_size)
        return Response(200, answer)

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
            "lastUpdated": _iso(run.last_change(now)),
        }


def _sort_value(field: str, run: dict[str, Any]) -> str:
    return str(run[field] or "")


def _parse_time(body: dict[str, Any], *names: str) -> tuple[float, ...]:
    times = []
    for name in names:
        value = body.get(name)
        if not isinstance(value, str):
            raise ValueError(f"{name} is required")
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{name} is not an ISO 8601 time: {value!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        times.append(parsed.timestamp())
    return tuple(times)


def _filters(filters: list[Any]) -> Callable[[dict[str, Any]], bool]:
    checks = []
    for item in filters:
        if not isinstance(item, dict):
            raise ValueError("each filter is an object with operand, operator and values")
        field = _FILTERABLE.get(item.get("operand", ""))
        test = _OPERATORS.get(item.get("operator", ""))
        values = item.get("values")
        if field is None:
            raise ValueError(f"this workspace does not filter on {item.get('operand')!r}")
        if test is None:
            raise ValueError(f"unknown operator {item.get('operator')!r}")
        if not isinstance(values, list) or not values:
            raise ValueError("a filter needs at least one value")
        checks.append((field, test, [str(v) for v in values]))
    return lambda run: all(test(str(run[field]), values) for field, test, values in checks)


def _order(order_by: list[Any]) -> list[tuple[str, bool]]:
    order = []
    for item in order_by:
        field = _ORDERABLE.get((item or {}).get("orderBy", ""))
        direction = (item or {}).get("order")
        if field is None or direction not in ("ASC", "DESC"):
            raise ValueError(f"cannot order by {item!r}")
        order.append((field, direction == "DESC"))
    return order


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _offset(token: Any) -> int:
    if token is None:
        return 0
    try:
        kind, _, number = base64.urlsafe_b64decode(str(token)).decode().partition(":")
        if kind == "offset" and number.isdigit():
            return int(number)
    except ValueError:
        pass
    raise ValueError(f"invalid continuationToken {token!r}")


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


def _error(status: int, code: str, message: str) -> Response:
    return Response(status, {"error": {"code": code, "message": message}})
