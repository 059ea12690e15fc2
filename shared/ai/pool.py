"""The deployments of each model in priority order, each behind its circuit breaker.

A request goes to the first deployment of its model whose breaker lets it through. A fault (a
5xx, a 408, a timeout, a broken connection) or a 429 sends it on to the next deployment of the
same model, never of another; a refusal that is the request's own doing (a content filter, any
other 4xx) is raised at once. The pool never sleeps: a 429's Retry-After benches the deployment
(capped), and when every deployment is benched or has just failed, `NoDeploymentAvailable`
carries the soonest time one may be tried again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from shared.ai.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from shared.ai.errors import Attempt, LlmError, NoDeploymentAvailable, UnknownModel
from shared.ai.settings import Deployment

T = TypeVar("T")
log = logging.getLogger(__name__)


class Verdict(StrEnum):
    THROTTLED = "throttled"  # 429: bench for Retry-After, try the next deployment
    FAULT = "fault"  # the deployment failed: count it, try the next deployment
    REFUSED = "refused"  # the request's own doing: raise `error`, the deployment is fine


@dataclass(frozen=True)
class Outcome:
    """What an upstream error means for the pool."""

    verdict: Verdict
    reason: str  # for logs and `NoDeploymentAvailable`: never a body, a key or a prompt
    retry_after_s: float | None = None
    error: LlmError | None = None


Classify = Callable[[Exception, Deployment], "Outcome | None"]


@dataclass
class Lease:
    """A deployment a request went to; settle it once, when its answer is known."""

    deployment: Deployment
    breaker: CircuitBreaker
    _settled: bool = field(default=False, repr=False)

    def succeeded(self) -> None:
        if not self._settled:
            self._settled = True
            self.breaker.succeeded()

    def failed(self) -> None:
        if not self._settled:
            self._settled = True
            self.breaker.failed()

    def release(self) -> None:
        if not self._settled:
            self._settled = True
            self.breaker.release()


class DeploymentPool:
    """The deployments of one capability (chat or embeddings), grouped by model."""

    def __init__(
        self,
        deployments: Sequence[Deployment],
        policy: BreakerPolicy,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._members: dict[str, list[tuple[Deployment, CircuitBreaker]]] = {}
        for deployment in deployments:  # already in priority order
            member = (deployment, CircuitBreaker(policy, clock))
            self._members.setdefault(deployment.model, []).append(member)

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self._members)

    def state(self, deployment: str, endpoint: str | None = None) -> BreakerState:
        """The breaker state of a deployment (by name, and endpoint where names repeat)."""
        for members in self._members.values():
            for candidate, breaker in members:
                if candidate.name == deployment and endpoint in (None, candidate.endpoint):
                    return breaker.state
        raise KeyError(deployment)

    async def acquire(
        self, model: str, attempt: Callable[[Deployment], Awaitable[T]], classify: Classify
    ) -> tuple[T, Lease]:
        """Run `attempt` on the first deployment of `model` that is available and answers;
        returns its result and the lease to settle. Raises the refusal of `classify`,
        `UnknownModel` or `NoDeploymentAvailable`."""
        members = self._members.get(model)
        if not members:
            raise UnknownModel(model, self.models)
        attempts: list[Attempt] = []
        for deployment, breaker in members:
            if not breaker.try_acquire():
                attempts.append(Attempt(deployment.name, f"benched {breaker.retry_in():.0f} s"))
                continue
            lease = Lease(deployment, breaker)
            try:
                return await attempt(deployment), lease
            except Exception as error:
                outcome = classify(error, deployment)
                if outcome is None:
                    lease.release()
                    raise
                if outcome.verdict is Verdict.REFUSED:
                    lease.succeeded()  # the deployment answered; the request was at fault
                    assert outcome.error is not None
                    raise outcome.error from error
                if outcome.verdict is Verdict.THROTTLED:
                    bench = breaker.throttled(outcome.retry_after_s)
                    attempts.append(
                        Attempt(deployment.name, f"{outcome.reason}, benched {bench:.0f} s")
                    )
                else:
                    lease.failed()
                    attempts.append(Attempt(deployment.name, outcome.reason))
                log.warning(
                    "LLM deployment %s of %s is passed over: %s",
                    deployment.name,
                    model,
                    attempts[-1].outcome,
                )
            except BaseException:  # cancelled: no verdict on the deployment
                lease.release()
                raise
        retry_in = min(breaker.retry_in() for _, breaker in members)
        raise NoDeploymentAvailable(model, max(1.0, retry_in), tuple(attempts))
