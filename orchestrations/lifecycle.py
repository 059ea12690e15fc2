"""The model lifecycle as a Durable orchestration: retrain a challenger, gate it against the
champion, wait for an approval raced against a timer, roll it out by canary steps, and promote
it or roll it back.

```
 drift | schedule | POST /retrain
        |
   [train challenger] --(first version)--> champion
        |
   [gate: PR-AUC uplift >= 0.01, CI excludes 0; p99; input quality] --fail--> rejected
        |
   [approval event]  vs  [timer] --timeout--> policy: promote | escalate (stop)
        |        \\--reject--> stopped
   [canary 10 %] -> wait, check -> [25 %] -> wait, check -> [50 %] -> wait, check
        |                 \\--a check fails (or nothing to judge) --> rolled back
   [100 %: champion alias moves] --> promoted
```

- Orchestrator `retrain_model`, input `{"name", "trigger", "window", "policy", "reasons"?,
  "label_maturity_hours"?}`; the policy (settings at the start) travels in the input, so that a
  replay after a restart follows the same one. The instance id is
  `retrain:<name>:<trigger>:<window>` (`lifecycle_start`), one per model and trigger window.
- Each step shows in the custom status (`step`, versions, percent, figures) and in the
  registry's `lifecycle_stage` tag, which `GET /api/models/{name}` shows with the split.
- The approval is the `approval` external event: `{"decision": "approve"|"reject", "comment",
  "by", "at"}` (`POST /api/models/{name}/approvals/{instance}`).
- A canary step is a durable timer, then a check of what each version served during it
  (`shared.models.canary`); a SIGKILL of the host mid-step resumes at the same step on restart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from orchestrations.lifecycle_activities import (
    CHECK_ACTIVITY,
    DECIDE_ACTIVITY,
    GATE_ACTIVITY,
    MOVE_ACTIVITY,
)
from orchestrations.lifecycle_start import RETRAIN
from orchestrations.medallion import RETRY
from orchestrations.model_training_remote import TRAIN_CHALLENGER

APPROVAL_EVENT = "approval"

bp = df.Blueprint()


class _Progress:
    """The custom status and the registry's stage tag, kept together."""

    def __init__(self, context: df.DurableOrchestrationContext, request: dict[str, Any]) -> None:
        self.context = context
        self.status: dict[str, Any] = {
            "model": request["name"],
            "trigger": request.get("trigger"),
            "window": request.get("window"),
        }

    def show(self, step: str, **figures: Any) -> None:
        self.status.update(step=step, **figures)
        self.context.set_custom_status(dict(self.status))


@bp.orchestration_trigger(context_name="context", orchestration=RETRAIN)
def retrain_orchestrator(
    context: df.DurableOrchestrationContext,
) -> Generator[Any, Any, dict[str, Any]]:
    request: dict[str, Any] = dict(context.get_input() or {})
    name = str(request.get("name", ""))
    policy: dict[str, Any] = dict(request.get("policy") or {})
    instance = context.instance_id
    progress = _Progress(context, request)

    def move(action: str, **more: Any) -> Any:
        return context.call_activity_with_retry(
            MOVE_ACTIVITY, RETRY, {"name": name, "instance": instance, "action": action, **more}
        )

    def decide(decision: str, **more: Any) -> Any:
        at = context.current_utc_datetime.isoformat()
        body = {"name": name, "instance": instance, "decision": decision, "at": at, **more}
        return context.call_activity_with_retry(DECIDE_ACTIVITY, RETRY, body)

    def finish(step: str, **figures: Any) -> Generator[Any, Any, dict[str, Any]]:
        progress.show(step, **figures)
        yield move("stage", stage=step)
        return {**progress.status}

    progress.show("training")
    yield move("stage", stage="training")
    options = {k: request[k] for k in ("label_maturity_hours",) if k in request}
    trained = yield context.call_sub_orchestrator(
        TRAIN_CHALLENGER, {"name": name, "run_id": instance, **options}, f"{instance}:train"
    )
    if trained.get("error"):
        return (yield from finish("failed", error=trained["error"]))
    challenger = int(trained["version"])
    if "champion" in trained.get("aliases", []):  # the model's first version serves at once
        return (yield from finish("promoted", challenger=challenger, first_version=True))

    progress.show("gate", challenger=challenger)
    yield move("stage", stage="gate")
    gated = yield context.call_activity_with_retry(
        GATE_ACTIVITY,
        RETRY,
        {"name": name, "instance": instance, "challenger": challenger, "policy": policy},
    )
    champion = gated.get("champion")
    progress.show("gate", champion=champion, gate=gated["metrics"], reasons=gated["reasons"])
    if not gated["passed"]:
        return (yield from finish("rejected"))

    timeout = dt.timedelta(seconds=float(policy.get("approval_timeout_s", 86400)))
    deadline = context.current_utc_datetime + timeout
    progress.show(
        "awaiting_approval",
        approve_by=deadline.isoformat(),
        approve=f"POST /api/models/{name}/approvals/{instance}",
    )
    yield move("stage", stage="awaiting_approval")
    answer = context.wait_for_external_event(APPROVAL_EVENT)
    timer = context.create_timer(deadline)
    winner = yield context.task_any([answer, timer])
    if winner is answer:
        timer.cancel()
        approval = _approval(answer.result)
    else:
        on_timeout = policy.get("on_approval_timeout", "escalate")
        approval = {
            "decision": "approve" if on_timeout == "promote" else "escalate",
            "comment": f"no answer in {timeout}; the policy is to {on_timeout}",
            "by": {"kind": "policy", "id": str(on_timeout)},
            "at": context.current_utc_datetime.isoformat(),
            "timed_out": True,
        }
    decision = {"approve": "approved", "reject": "approval_refused"}.get(
        approval["decision"], "escalated"
    )
    yield decide(decision, approval=approval, from_version=champion, to_version=challenger)
    progress.show("approval", approval=approval)
    if approval["decision"] != "approve":
        return (yield from finish("stopped"))

    steps = [int(p) for p in policy.get("steps", (10, 25, 50, 100))]
    wait = dt.timedelta(seconds=float(policy.get("canary_step_s", 900)))
    checks = []
    for percent in steps[:-1]:
        progress.show("canary", percent=percent)
        yield move("share", version=challenger, percent=percent, stage=f"canary {percent}%")
        since = context.current_utc_datetime
        waits = 0
        while True:
            yield context.create_timer(context.current_utc_datetime + wait)
            verdict = yield context.call_activity_with_retry(
                CHECK_ACTIVITY,
                RETRY,
                {
                    "name": name,
                    "champion": champion,
                    "challenger": challenger,
                    "since": since.isoformat(),
                    "until": context.current_utc_datetime.isoformat(),
                    "policy": policy,
                },
            )
            if verdict["verdict"] == "wait" and waits < int(policy.get("max_waits", 3)):
                waits += 1
                progress.show("canary", percent=percent, waiting=verdict["reasons"])
                continue
            break
        checks.append({"percent": percent, **verdict})
        progress.show("canary", percent=percent, checks=checks)
        if verdict["verdict"] != "pass":
            yield move("roll_back")
            yield decide(
                "rolled_back",
                from_version=challenger,
                to_version=champion,
                reasons=verdict["reasons"],
                gate=verdict["metrics"],
            )
            return (yield from finish("rolled_back", percent=0))
    yield move("promote", version=challenger)
    yield decide(
        "promoted",
        from_version=champion,
        to_version=challenger,
        gate=gated["metrics"],
        approval=approval,
    )
    return (yield from finish("promoted", percent=100))


def _approval(answer: Any) -> dict[str, Any]:
    """The approval event's body as the route raised it (checked there); anything else is
    neither an approval nor a refusal, and stops the rollout."""
    if not isinstance(answer, dict) or answer.get("decision") not in ("approve", "reject"):
        return {"decision": "reject", "comment": "an approval event that is not one", "by": {}}
    return dict(answer)
