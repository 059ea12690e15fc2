"""The caller, as the platform knows it after authentication."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

PrincipalKind = Literal["user", "app", "local"]


@dataclass(frozen=True)
class Principal:
    """A user (its `oid`), an application (its client id) or the local developer, with its
    tenant, app roles and delegated scopes. It holds no token and no name."""

    kind: PrincipalKind
    id: str
    tenant: str
    roles: frozenset[str] = field(default_factory=frozenset)
    scopes: frozenset[str] = field(default_factory=frozenset)

    @cached_property
    def permissions(self) -> frozenset[str]:
        """Its roles with what they imply (`shared.identity.roles`), computed once."""
        from shared.identity.roles import effective

        return effective(self.roles)

    def holds(self, permission: str) -> bool:
        return permission in self.permissions


class AuthenticationError(Exception):
    """No identity could be established; `reason` is short and safe to show the caller (it
    names no key id and holds nothing of the token)."""

    def __init__(self, reason: str, action: str = "authn_token_invalid") -> None:
        super().__init__(reason)
        self.reason = reason
        self.action = action
