"""What an audit record says, as the platform reports it to the trail (`shared.audit.trail`).

Actions use the OWASP logging vocabulary where it has a word (`authn_token_invalid`,
`authz_fail`, `input_validation_fail`, `excess_rate_limit_exceeded`, ...), else the platform's
own verb (`pipeline_started`, `instance_purged`, ...). A record never holds a token, a key, a
request body or personal data: the actor is its kind, object id or client id, and tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared.identity.principal import Principal

# `allowed`: a privileged action authorised and about to run (recorded before it runs);
# `success` / `failure`: how a request or action ended; `denied`: refused for want of a role.
Outcome = Literal["allowed", "success", "failure", "denied"]


@dataclass(frozen=True)
class Actor:
    """Who acted: `user` (Entra object id), `app` (client id), `local` (the local developer),
    or `anonymous` when no identity could be established."""

    kind: str
    id: str
    tenant: str = ""

    @classmethod
    def of(cls, principal: Principal | None) -> Actor:
        if principal is None:
            return cls("anonymous", "")
        return cls(principal.kind, principal.id, principal.tenant)


@dataclass(frozen=True)
class AuditEvent:
    """One thing that happened, as the caller of the trail reports it."""

    action: str
    outcome: Outcome
    actor: Actor
    resource: str  # what it was done to: a route (`POST /api/events`) or an object
    reason: str = ""
    status: int | None = None  # the HTTP status answered, for requests
    client: str = ""  # the client's address
    traceparent: str = ""  # W3C trace context of the request, when it had one


class AuditUnavailable(Exception):
    """The audit store could not take the record: privileged actions must not go ahead."""
