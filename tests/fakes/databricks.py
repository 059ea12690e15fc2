"""A loopback Databricks workspace: Jobs `runs/submit`, `runs/get`, `runs/cancel` (2.1 and 2.2).

The 2.1 and 2.2 bodies of these three calls are the same; the SDK speaks 2.2, curl may speak 2.1.
Runs go PENDING -> RUNNING -> TERMINATED (SUCCESS or FAILED), or TERMINATING -> TERMINATED
(CANCELED) when cancelled, on the clock. A run fails if its Spark SQL does not parse as Spark.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot.errors import ParseError

from shared.batch.sql import ModelSqlError, decode_job
from tests.fakes.loopback import LoopbackServer, Request, Response
from tests.fakes.runs import FakeRun, Phase, RunBook

TOKEN = "dapi-loopback-token"
WORKSPACE_ID = "4242424242424242"
_PREFIX = r"/api/2\.[12]/jobs/runs"
_LIFE_CYCLE = {
    Phase.PENDING: "PENDING",
    Phase.RUNNING: "RUNNING",
    Phase.SUCCEEDED: "TERMINATED",
    Phase.FAILED: "TERMINATED",
    Phase.CANCELLING: "TERMINATING",
    Phase.CANCELLED: "TERMINATED",
}
_RESULT = {Phase.SUCCEEDED: "SUCCESS", Phase.FAILED: "FAILED", Phase.CANCELLED: "CANCELED"}


def spark_sql_outcome(payload: Any, fail_models: frozenset[str] = frozenset()) -> tuple[bool, str]:
    """Succeeds when every statement parses as Spark SQL, unless its model is in `fail_models`."""
    try:
        task = payload["tasks"][0]
        model, statements = decode_job(task["spark_python_task"]["parameters"][0])
    except (KeyError, IndexError, TypeError, ModelSqlError) as error:
        return False, f"the runner could not read its job: {error}"
    if model in fail_models:
        return False, f"[{model}] AnalysisException: simulated failure"
    for statement in statements:
        try:
            sqlglot.parse_one(statement, read="spark")
        except ParseError as error:
            return False, f"[{model}] ParseException: {error}"
    return True, ""


class FakeDatabricks:
    """Start with `with FakeDatabricks() as workspace:`, then point WorkspaceClient at `.url`."""

    def __init__(
        self,
        *,
        pending_s: float = 0.05,
        running_s: float | None = 0.2,
        outcome: Callable[[Any], tuple[bool, str]] | None = None,
        tls_dir: Path | None = None,
    ) -> None:
        self.fail_models: set[str] = set()
        self.hold_models: set[str] = set()  # runs of these never finish until cancelled
        self.runs = RunBook(
            outcome or (lambda payload: spark_sql_outcome(payload, frozenset(self.fail_models))),
            pending_s=pending_s,
            running_s=running_s,
        )
        self._ids = itertools.count(1001)
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()
        self.server = LoopbackServer(tls_dir=tls_dir)
        self.server.route("GET", r"/\.well-known/databricks-config", self._host_metadata)
        self.server.route("POST", _PREFIX + "/submit", self._submit)
        self.server.route("GET", _PREFIX + "/get", self._get)
        self.server.route("POST", _PREFIX + "/cancel", self._cancel)
        self.url = self.server.url

    def __enter__(self) -> FakeDatabricks:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    def _host_metadata(self, request: Request) -> Response:
        return Response(
            200,
            {"oidc_endpoint": f"{self.url}/oidc", "workspace_id": WORKSPACE_ID, "cloud": "azure"},
        )

    def _authorized(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return Response(
                401, {"error_code": "UNAUTHENTICATED", "message": "Invalid access token."}
            )
        if request.headers.get("x-databricks-workspace-id", WORKSPACE_ID) != WORKSPACE_ID:
            return Response(403, {"error_code": "PERMISSION_DENIED", "message": "Wrong workspace."})
        return None

    def _submit(self, request: Request) -> Response:
        if denied := self._authorized(request):
            return denied
        body = request.body if isinstance(request.body, dict) else {}
        tasks = body.get("tasks")
        if not isinstance(tasks, list) or not tasks:
            return _invalid("At least one task is required.")
        for task in tasks:
            if not isinstance(task, dict) or not task.get("task_key"):
                return _invalid("Every task needs a task_key.")
            if not (task.get("existing_cluster_id") or task.get("new_cluster")):
                return _invalid("A task needs existing_cluster_id or new_cluster.")
        with self._lock:
            token = body.get("idempotency_token")
            if token and token in self._tokens:
                return Response(200, {"run_id": int(self._tokens[token])})
            run_id = str(next(self._ids))
            if token:
                self._tokens[token] = run_id
        self.runs.submit(run_id, body, hold=_model(body) in self.hold_models)
        return Response(200, {"run_id": int(run_id)})

    def cancelled_models(self) -> list[str]:
        """The models whose runs someone asked to cancel."""
        return sorted(_model(r.payload) or "" for r in self.runs.all() if r.cancel_requested)

    def _get(self, request: Request) -> Response:
        if denied := self._authorized(request):
            return denied
        run = self.runs.get(request.query.get("run_id", ""))
        if run is None:
            return _invalid(f"Run {request.query.get('run_id')} does not exist.")
        return Response(200, self._describe(run))

    def _cancel(self, request: Request) -> Response:
        if denied := self._authorized(request):
            return denied
        run_id = str((request.body or {}).get("run_id", ""))
        if self.runs.cancel(run_id) is None:
            return _invalid(f"Run {run_id} does not exist.")
        return Response(200, {})

    def _describe(self, run: FakeRun) -> dict[str, Any]:
        now = self.runs.clock()
        phase = run.phase(now)
        state: dict[str, Any] = {
            "life_cycle_state": _LIFE_CYCLE[phase],
            "state_message": run.message if phase is Phase.FAILED else "",
            "user_cancelled_or_timedout": phase in (Phase.CANCELLING, Phase.CANCELLED),
        }
        status: dict[str, Any] = {"state": _LIFE_CYCLE[phase]}
        if phase in _RESULT:
            state["result_state"] = _RESULT[phase]
            status["termination_details"] = {
                "code": {"SUCCESS": "SUCCESS", "FAILED": "RUN_EXECUTION_ERROR"}.get(
                    _RESULT[phase], "USER_CANCELED"
                ),
                "type": "SUCCESS" if phase is Phase.SUCCEEDED else "CLIENT_ERROR",
                "message": state["state_message"],
            }
        if phase is Phase.CANCELLED:
            state["state_message"] = "Run cancelled."
        end = run.end_time(now)
        body = run.payload
        return {
            "job_id": int(run.run_id),
            "run_id": int(run.run_id),
            "number_in_job": int(run.run_id),
            "run_name": body.get("run_name", "Untitled"),
            "run_type": "SUBMIT_RUN",
            "state": state,
            "status": status,
            "start_time": int(run.submitted * 1000),
            "end_time": int(end * 1000) if end else 0,
            "run_page_url": f"{self.url}/#job/{run.run_id}/run/{run.run_id}",
            "tasks": [
                {"run_id": int(run.run_id) * 10 + i, "task_key": task["task_key"], "state": state}
                for i, task in enumerate(body.get("tasks", []))
            ],
        }


def _model(body: Any) -> str | None:
    try:
        return decode_job(body["tasks"][0]["spark_python_task"]["parameters"][0])[0]
    except (KeyError, IndexError, TypeError, ModelSqlError):
        return None


def _invalid(message: str) -> Response:
    return Response(400, {"error_code": "INVALID_PARAMETER_VALUE", "message": message})
