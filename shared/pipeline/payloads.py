"""The medallion pipeline's durable payloads: what its orchestrators and activities pass each other.

The Durable SDK carries activity and sub-orchestration inputs and outputs as JSON values, and
records them in the instance's history. The sender turns a payload into JSON values with `encode`;
the receiver reads it back with `decode`, or with `decode_outcome` for an activity's answer, which
is either the payload or an `ActivityFailure`. The wire shapes are the ones recorded before these
types existed, so runs in flight across a deploy replay unchanged; unknown fields are ignored.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from shared.batch.engine import RunState
from shared.pipeline.gold import GoldSubmission
from shared.pipeline.maintenance import MaintenanceResult, MaintenanceTarget
from shared.pipeline.run_ledger import RunOwner
from shared.pipeline.silver import SilverOutcome

__all__ = [
    "ActivityFailure",
    "FinishGold",
    "GoldRequest",
    "GoldSubmission",
    "MaintenanceResult",
    "MaintenanceTarget",
    "PayloadError",
    "Recorded",
    "RunPlan",
    "RunRef",
    "RunState",
    "SilverOutcome",
    "SilverRequest",
    "SubmitGold",
    "decode",
    "decode_outcome",
    "encode",
]

T = TypeVar("T")


class PayloadError(ValueError):
    """A durable payload without its type's shape; the message names the type and the field."""


class RunPlan(msgspec.Struct, frozen=True):
    """What a run does (the plan activity's answer): the silver tables and gold models in
    order, the silver tables each model reads, the engine, and how to watch a remote run."""

    silver: list[str]
    gold: list[str]
    reads: dict[str, list[str]]
    engine: str
    poll_first_s: float
    poll_max_s: float
    run_timeout_s: float


class SilverRequest(msgspec.Struct, frozen=True):
    """One silver table in one run: the silver sub-orchestration's and its activity's input."""

    table: str
    run_id: str


class GoldRequest(msgspec.Struct, frozen=True):
    """One gold model in one run (`run_key`), and how to watch its remote run: the gold
    sub-orchestration's input."""

    model: str
    run_key: str
    poll_first_s: float
    poll_max_s: float
    run_timeout_s: float


class SubmitGold(msgspec.Struct, frozen=True):
    """The submit activity's input: the model, the run, and the instances the run ledger
    records the remote run under (absent in inputs scheduled before the ledger existed)."""

    model: str
    run_key: str
    instance_id: str | None = None
    parent_instance_id: str | None = None

    @property
    def owner(self) -> RunOwner | None:
        return RunOwner(self.instance_id, self.parent_instance_id) if self.instance_id else None


class RunRef(msgspec.Struct, frozen=True):
    """A remote run, for the activities that poll or cancel it."""

    run_id: str


class FinishGold(msgspec.Struct, frozen=True):
    """A successful build: the submission and the run's final state, to record what it read."""

    submission: GoldSubmission
    final: RunState


class Recorded(msgspec.Struct, frozen=True):
    """The finish activity's answer."""

    recorded: bool = True


class ActivityFailure(msgspec.Struct, frozen=True):
    """An activity's answer when it failed in a way that a retry cannot fix (a retriable failure
    raises instead, and the retry policy tries again)."""

    error: str
    permanent: bool = True

    @classmethod
    def of(cls, error: Exception) -> ActivityFailure:
        return cls(f"{type(error).__name__}: {error}")


def encode(payload: object) -> Any:
    """The payload as JSON values (dicts, lists, strings, numbers, booleans and None)."""
    return msgspec.to_builtins(payload)


def decode(data: object, kind: type[T]) -> T:
    """The payload of type `kind` from JSON values; raises PayloadError."""
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as error:
        raise PayloadError(f"{kind.__name__}: {error}") from error


def decode_outcome(data: object, kind: type[T]) -> T | ActivityFailure:
    """An activity's answer: the payload of type `kind`, or the failure it reported."""
    if isinstance(data, dict) and "error" in data:
        return decode(data, ActivityFailure)
    return decode(data, kind)
