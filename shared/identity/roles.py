"""The platform's app roles and what each allows, deny by default.

Every route needs one permission, which is a role. A caller holds a permission when its token
carries that role, or a role that implies it:

| role | what it is for | also holds |
|---|---|---|
| `Platform.Reader` | read the platform's descriptions and state | |
| `Platform.Writer` | post events, land files (devices, apps) | |
| `Platform.Analyst` | read gold, ask questions | Reader |
| `Platform.Operator` | pipelines, orchestrations, models | Reader |
| `Platform.Steward` | the catalog: descriptions, owners, tags | Reader |
| `Platform.PrivacyOfficer` | access and erasure requests | Reader |
| `Platform.Admin` | the audit trail, keys, quotas, settings of apps | every `Platform.*` role |
| `PII.Read` | see personal data unmasked in answers | (granted only explicitly) |
| `AI.User` | call the AI gateway's models (an app's key holds it) | (granted only explicitly) |
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Role(StrEnum):
    READER = "Platform.Reader"
    WRITER = "Platform.Writer"
    ANALYST = "Platform.Analyst"
    OPERATOR = "Platform.Operator"
    STEWARD = "Platform.Steward"
    PRIVACY_OFFICER = "Platform.PrivacyOfficer"
    ADMIN = "Platform.Admin"
    PII_READ = "PII.Read"
    AI_USER = "AI.User"


ALL_ROLES = tuple(role.value for role in Role)
_PLATFORM_ROLES = frozenset(role for role in Role if role.value.startswith("Platform."))
IMPLIES: dict[Role, frozenset[Role]] = {
    Role.ANALYST: frozenset({Role.READER}),
    Role.OPERATOR: frozenset({Role.READER}),
    Role.STEWARD: frozenset({Role.READER}),
    Role.PRIVACY_OFFICER: frozenset({Role.READER}),
    Role.ADMIN: _PLATFORM_ROLES,
}


_BY_NAME = {role.value: role for role in Role}


def effective(roles: Iterable[str]) -> frozenset[str]:
    """The permissions a set of roles holds, with what each implies (unknown roles ignored)."""
    held: set[str] = set()
    for name in roles:
        role = _BY_NAME.get(name)
        if role is None:
            continue
        held.add(role.value)
        held.update(implied.value for implied in IMPLIES.get(role, ()))
    return frozenset(held)


def allows(roles: frozenset[str], permission: Role) -> bool:
    """Whether a caller with these (effective) roles holds the permission."""
    return permission.value in roles
