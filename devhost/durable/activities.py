"""Run one activity as the Python worker does: JSON in, JSON out, failures with the user's stack."""

from __future__ import annotations

import sysconfig
import traceback
from collections.abc import Mapping
from pathlib import Path

from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter

from devhost.durable.http_activity import HttpActivityError, call_http
from devhost.durable.store import ActivityRow
from devhost.indexing import FunctionSpec
from devhost.invocation import FunctionFailed, Invoker

HTTP_ACTIVITY = "BuiltIn::HttpActivity"
_HOST_FRAMES = (str(Path(__file__).resolve().parent.parent), sysconfig.get_paths()["stdlib"])


class ActivityFailed(Exception):
    """The activity failed; `reason` and `details` become the TaskFailed event."""

    def __init__(self, reason: str, details: str | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


def user_stack(error: BaseException) -> str:
    """The error's traceback without the host's own frames in front of the user's."""
    frames = error.__traceback__
    while frames is not None and frames.tb_frame.f_code.co_filename.startswith(_HOST_FRAMES):
        frames = frames.tb_next
    return "".join(traceback.format_exception(type(error), error, frames))


async def execute_activity(
    invoker: Invoker,
    activities: Mapping[str, FunctionSpec],
    row: ActivityRow,
    invocation_id: str,
) -> str:
    """Run the activity and return its JSON-encoded result; raises ActivityFailed."""
    if row.name == HTTP_ACTIVITY:
        try:
            return await call_http(row.input)
        except HttpActivityError as error:
            raise ActivityFailed(str(error), None) from error
    spec = activities.get(row.name)
    if spec is None:
        raise ActivityFailed(
            f"The activity function '{row.name}' doesn't exist or is not an activity function.",
            None,
        )
    try:
        value = ActivityTriggerConverter.decode(
            meta.Datum(row.input if row.input is not None else "null", "json"),
            trigger_metadata=None,
        )
    except ValueError as error:
        raise ActivityFailed(f"cannot decode the activity input: {error}", None) from error
    try:
        invocation = await invoker.invoke(
            spec,
            value,
            invocation_id=invocation_id,
            log_fields={"instanceId": row.instance_id, "taskId": row.task_id},
        )
    except FunctionFailed as failure:
        cause = failure.error
        raise ActivityFailed(f"{type(cause).__name__}: {cause}", user_stack(cause)) from failure
    try:
        encoded = ActivityTriggerConverter.encode(invocation.result, expected_type=None)
    except ValueError as error:
        raise ActivityFailed(str(error), None) from error
    return str(encoded.value)
