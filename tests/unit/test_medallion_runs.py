"""Cancelling a run that ends at the same moment: the answer says it had finished, not a 500."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus

from orchestrations.medallion import MEDALLION
from orchestrations.medallion_runs import cancel_run

pytestmark = pytest.mark.unit


class RacingClient:
    """A Durable client whose run completes between the status read and the cancel event."""

    def __init__(self, gone: bool) -> None:
        self.gone = gone
        self.reads = 0

    async def get_status(self, instance_id: str) -> Any:
        self.reads += 1
        done = self.gone and self.reads > 1
        status = (
            OrchestrationRuntimeStatus.Completed if done else OrchestrationRuntimeStatus.Running
        )
        return SimpleNamespace(name=MEDALLION, runtime_status=status, custom_status={})

    async def raise_event(self, instance_id: str, name: str, data: Any) -> None:
        if self.gone:  # what the SDK raises for the API's 410 Gone
            raise Exception(f"Instance with ID {instance_id} is gone: either completed or failed")


async def test_a_run_that_finished_meanwhile_is_reported_as_finished() -> None:
    cancellation = await cancel_run(RacingClient(gone=True), "run-1")  # type: ignore[arg-type]
    assert (cancellation.stopping, cancellation.runtime_status) == (False, "Completed")


async def test_a_running_run_is_told_to_stop() -> None:
    cancellation = await cancel_run(RacingClient(gone=False), "run-1")  # type: ignore[arg-type]
    assert (cancellation.stopping, cancellation.runtime_status) == (True, "Running")
