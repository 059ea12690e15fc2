"""App Service Authentication's principal header (`X-MS-CLIENT-PRINCIPAL`), in `easyauth` mode
only: behind App Service Authentication the front end validated the token and strips the header
from clients; in every other mode anyone could send it, so it is never read there."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from shared.identity.principal import AuthenticationError, Principal

HEADER = "x-ms-client-principal"
MAX_HEADER_BYTES = 64 * 1024
OID_CLAIMS = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
TENANT_CLAIMS = ("http://schemas.microsoft.com/identity/claims/tenantid", "tid")


def principal_from_header(value: str | None, tenant_id: str | None) -> Principal:
    """The principal App Service Authentication vouches for; AuthenticationError when the
    header is missing or unreadable, or names another tenant."""
    if not value:
        raise AuthenticationError("no App Service Authentication principal")
    if len(value) > MAX_HEADER_BYTES:
        raise AuthenticationError("the principal header is too large")
    try:
        decoded: Any = json.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError) as error:
        raise AuthenticationError("the principal header is malformed") from error
    if not isinstance(decoded, Mapping) or not isinstance(decoded.get("claims"), list):
        raise AuthenticationError("the principal header is malformed")
    role_type = decoded.get("role_typ")
    if not isinstance(role_type, str):
        role_type = "roles"
    claims: dict[str, list[str]] = {}
    for claim in decoded["claims"]:
        if isinstance(claim, Mapping) and isinstance(claim.get("typ"), str):
            value_text = claim.get("val")
            if isinstance(value_text, str):
                claims.setdefault(claim["typ"], []).append(value_text)
    tenant = _first(claims, TENANT_CLAIMS)
    if tenant_id is not None and tenant != tenant_id:
        raise AuthenticationError("the principal is from another tenant")
    roles = frozenset(claims.get(role_type, []) + claims.get("roles", []))
    scopes = frozenset(
        " ".join(claims.get("http://schemas.microsoft.com/identity/claims/scope", [])).split()
    )
    if _first(claims, ("idtyp",)) == "app":
        app_id = _first(claims, ("azp", "appid"))
        if not app_id:
            raise AuthenticationError("the application principal names no client id")
        return Principal("app", app_id, tenant or "", roles, scopes)
    oid = _first(claims, OID_CLAIMS)
    if not oid:
        raise AuthenticationError("the principal names no user (oid)")
    return Principal("user", oid, tenant or "", roles, scopes)


def _first(claims: Mapping[str, list[str]], names: tuple[str, ...]) -> str | None:
    for name in names:
        values = claims.get(name)
        if values:
            return values[0]
    return None
