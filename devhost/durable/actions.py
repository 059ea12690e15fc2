"""Read what one orchestrator turn returned: its flattened actions, output, status or error."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from devhost.durable.activities import user_stack

OUT_OF_PROC_MARKER = "\n\n$OutOfProcData$:"


class ActionType(IntEnum):
    """The numbers of `azure.durable_functions.models.actions.ActionType`."""

    CALL_ACTIVITY = 0
    CALL_ACTIVITY_WITH_RETRY = 1
    CALL_SUB_ORCHESTRATOR = 2
    CALL_SUB_ORCHESTRATOR_WITH_RETRY = 3
    CONTINUE_AS_NEW = 4
    CREATE_TIMER = 5
    WAIT_FOR_EXTERNAL_EVENT = 6
    CALL_ENTITY = 7
    CALL_HTTP = 8
    SIGNAL_ENTITY = 9
    WHEN_ANY = 11
    WHEN_ALL = 12


_ACTION_TYPES = {int(kind): kind for kind in ActionType}
_END = object()


class OrchestratorProtocolError(ValueError):
    """The orchestrator returned something that is not an orchestration state."""


@dataclass(frozen=True)
class Action:
    """One atomic action, compound WhenAll/WhenAny actions flattened away."""

    type: ActionType
    raw: dict[str, Any]

    @property
    def name(self) -> str:
        """The name replay must match: the function or the external event."""
        value = self.raw.get("functionName") or self.raw.get("externalEventName") or ""
        return str(value)

    @property
    def signature(self) -> tuple[int, str]:
        return (int(self.type), "" if self.type is ActionType.CREATE_TIMER else self.name)

    @property
    def takes_task_id(self) -> bool:
        """Whether the SDK numbers this action's task (external events are keyed by name)."""
        return self.type is not ActionType.WAIT_FOR_EXTERNAL_EVENT

    @property
    def is_cancelled(self) -> bool:
        return bool(self.raw.get("isCanceled"))

    def describe(self) -> str:
        label = self.type.name.title().replace("_", "")
        return f"{label} {self.name!r}" if self.name else label


@dataclass
class TurnResult:
    """The orchestration state a turn returned (`isDone`, `actions`, `output`, ...)."""

    is_done: bool
    actions: list[Action]
    output: Any = None
    custom_status: Any = None
    error: str | None = None
    details: str | None = None


def flatten(actions: Any) -> list[Action]:
    """Flatten the `actions` array (one group per schema-2 payload) depth first."""
    if not isinstance(actions, list):
        raise OrchestratorProtocolError("'actions' must be a list")
    flat: list[Action] = []
    stack: list[Any] = [iter(actions)]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, list):
            stack.append(iter(item))
        elif isinstance(item, dict) and "actionType" in item:
            kind = _ACTION_TYPES.get(item["actionType"])
            if kind is None:
                raise OrchestratorProtocolError(f"unknown actionType {item['actionType']!r}")
            if kind is ActionType.WHEN_ALL or kind is ActionType.WHEN_ANY:
                stack.append(iter(item.get("compoundActions", [])))
            else:
                flat.append(Action(kind, item))
        else:
            raise OrchestratorProtocolError(f"not an action: {item!r}")
    return flat


def parse_state(text: Any) -> TurnResult:
    """Parse the JSON string an orchestrator function returned."""
    if not isinstance(text, str | bytes):
        raise OrchestratorProtocolError(
            f"an orchestrator must return the SDK's JSON state, got {type(text).__name__}; "
            "is the function decorated with orchestration_trigger?"
        )
    try:
        state = json.loads(text)
    except ValueError as error:
        raise OrchestratorProtocolError(f"the orchestrator state is not JSON: {error}") from error
    if not isinstance(state, dict):
        raise OrchestratorProtocolError("the orchestrator state must be a JSON object")
    return TurnResult(
        is_done=bool(state.get("isDone")),
        actions=flatten(state.get("actions", [])),
        output=state.get("output"),
        custom_status=state.get("customStatus"),
        error=state.get("error"),
    )


def parse_failure(error: BaseException) -> TurnResult:
    """The state carried by the exception the SDK raises when user code raised.

    The SDK appends `$OutOfProcData$:` and the state JSON to the message and chains the user's
    exception, whose message and stack become the failure details.
    """
    message = str(error)
    result = TurnResult(is_done=False, actions=[])
    if OUT_OF_PROC_MARKER in message:
        message, _, state_text = message.partition(OUT_OF_PROC_MARKER)
        try:
            result = parse_state(state_text)
        except OrchestratorProtocolError:
            result = TurnResult(is_done=False, actions=[])
    cause = error.__cause__ or error
    result.error = f"{type(cause).__name__}: {message}" if cause is not error else message
    result.details = user_stack(cause)
    return result
