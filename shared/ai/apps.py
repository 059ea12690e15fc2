"""The AI gateway's apps: who may call it, with which limits, on the document store port.

An app is identified either by a gateway key (`issue`: the key is shown once, only its salted
hash is kept, see `shared.ai.app_keys`) or by its Entra ID application (client) id, when it
calls with tokens (`register_entra`). Each is one document in `APPS_CONTAINER`, partitioned by
its own id, so every lookup on the request path is one point read:

- a key app's id is `app-<16 hex>`, and its key names those hex digits;
- an Entra app's id is `entra-<client id>` (the GUID in lower case).

Revoking an app marks it and drops its key's hash, so a revoked key stays dead even if the mark
were undone; an unknown or revoked key is `UnknownKey` (401), the same error for both, so a
caller learns nothing of which apps exist. `AppKeyResolver` plugs the registry into the
platform's `Authenticator` (its `KeyResolver`).
"""

from __future__ import annotations

import builtins
import datetime as dt
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.ai.app_keys import KeyHash, app_id_of, is_key_app_id, new_app_id, new_key
from shared.ai.app_limits import AppLimits
from shared.documents.port import (
    Condition,
    ContainerSpec,
    DocumentConflict,
    DocumentContainer,
    DocumentNotFound,
    Json,
    PatchOperation,
    PreconditionFailed,
    Query,
)
from shared.identity.principal import Principal

APPS_CONTAINER = ContainerSpec("ai_apps", "/id")
ENTRA_PREFIX = "entra-"
MAX_NAME = 100
CHECKED_FOR_S = 1.0  # how long a key's check answers `just_authenticated`
CHECKED_KEPT = 4096
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_NAME = re.compile(r"[^\x00-\x1f\x7f-\x9f]+")


class UnknownKey(Exception):
    """The key is not a gateway key, names no app, does not match, or was revoked (401). The
    message is the same for all and never holds the key."""

    def __init__(self) -> None:
        super().__init__("the key is unknown or revoked")


class AppNotFound(LookupError):
    """No app has that id (404 on the admin route)."""


class AppExists(Exception):
    """An Entra ID application is registered already, and not revoked (409)."""


class InvalidApp(ValueError):
    """An app's name or Entra ID application id is refused; the message says why."""


@dataclass(frozen=True)
class App:
    """An app as the gateway sees it; it holds no key and no hash."""

    id: str
    name: str
    limits: AppLimits
    created_at: str
    revoked_at: str | None = None
    entra_app_id: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def to_json(self) -> dict[str, Json]:
        """The app for the admin route."""
        return {
            "id": self.id,
            "name": self.name,
            "limits": self.limits.to_json(),
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "entra_app_id": self.entra_app_id,
        }


class AppRegistry:
    """The apps in a document container (`APPS_CONTAINER`); `clock` gives epoch seconds."""

    def __init__(self, container: DocumentContainer, clock: Callable[[], float] = time.time):
        self.container = container
        self._clock = clock
        # The apps whose keys were just checked, for the same request's `just_authenticated`
        # (a key is always checked against the store: revocation takes effect at once).
        self._checked: dict[str, tuple[float, App]] = {}

    def issue(self, name: str, limits: AppLimits) -> tuple[App, str]:
        """A new app with a new key. The key is returned here once and kept nowhere."""
        app_id = new_app_id()
        key = new_key(app_id)
        document = self._document(app_id, name, limits)
        document["key"] = KeyHash.of(key).to_json()
        return _app(self.container.create(document)), key

    def register_entra(self, name: str, entra_app_id: str, limits: AppLimits) -> App:
        """An app for an Entra ID application (its client id), which calls with tokens. One
        registration per application: AppExists while one is live; a revoked one is replaced."""
        client_id = _client_id(entra_app_id)
        document = self._document(ENTRA_PREFIX + client_id, name, limits)
        document["entra_app_id"] = client_id
        try:
            return _app(self.container.create(document))
        except DocumentConflict:
            existing = self.container.read(str(document["id"]), document["id"])
            if existing.get("revoked_at") is None:
                raise AppExists(f"the Entra ID application {client_id} is registered") from None
            try:
                return _app(self.container.replace(document, if_match=existing["_etag"]))
            except PreconditionFailed:
                raise AppExists(f"the Entra ID application {client_id} changed meanwhile") from None

    def authenticate(self, key: str) -> App:
        """The live app a key is for; UnknownKey otherwise (one point read)."""
        app_id = app_id_of(key)
        if app_id is None:
            raise UnknownKey()
        try:
            document = self.container.read(app_id, app_id)
        except DocumentNotFound:
            raise UnknownKey() from None
        hashed = KeyHash.from_json(document.get("key"))
        if hashed is None or not hashed.matches(key) or document.get("revoked_at") is not None:
            raise UnknownKey()
        app = _app(document)
        if len(self._checked) >= CHECKED_KEPT:
            self._checked.clear()
        self._checked[app.id] = (time.monotonic(), app)
        return app

    def just_authenticated(self, principal: Principal) -> App | None:
        """The app whose key authenticated `principal` within `CHECKED_FOR_S`, as read then;
        None otherwise (the caller reads it with `for_principal`). Saves the request that has
        just checked its key a second read of the same document."""
        if principal.kind != "app":
            return None
        found = self._checked.get(principal.id)
        if found is None or time.monotonic() - found[0] > CHECKED_FOR_S:
            return None
        return found[1]

    def by_entra_app(self, entra_app_id: str) -> App | None:
        """The live app registered for an Entra ID application; None if none is (or it was
        revoked, or the id is not a GUID)."""
        try:
            app_id = ENTRA_PREFIX + _client_id(entra_app_id)
            app = self.get(app_id)
        except (InvalidApp, AppNotFound):
            return None
        return None if app.revoked else app

    def for_principal(self, principal: Principal) -> App | None:
        """The live app behind an authenticated caller of kind `app`: a key's (its id is the
        app's, see `AppKeyResolver`) or an Entra ID application's; None for any other."""
        if principal.kind != "app":
            return None
        if not is_key_app_id(principal.id):
            return self.by_entra_app(principal.id)
        try:
            app = self.get(principal.id)
        except AppNotFound:
            return None
        return None if app.revoked else app

    def get(self, app_id: str) -> App:
        """An app, revoked or not; AppNotFound."""
        return _app(self._read(app_id))

    def revoke(self, app_id: str) -> App:
        """Revoke an app (its key, or its Entra ID registration) for good; revoking twice is
        harmless. AppNotFound."""
        document = self._read(app_id)
        if document.get("revoked_at") is not None:
            return _app(document)
        operations = [
            PatchOperation("set", "/revoked_at", self._now()),
            PatchOperation("set", "/key", None),
        ]
        return _app(self._patch(app_id, operations))

    def update_limits(self, app_id: str, limits: AppLimits) -> App:
        """Replace an app's limits (they take effect on its next request). AppNotFound."""
        return _app(self._patch(app_id, [PatchOperation("set", "/limits", limits.to_json())]))

    def list(self, include_revoked: bool = True) -> builtins.list[App]:
        """Every app, by id (a cross-partition query: for the admin route, not the hot path)."""
        where = [Condition("/type", "=", "app")]
        if not include_revoked:
            where.append(Condition("/revoked_at", "=", None))
        query = Query(where=where, order_by=[("/id", False)], cross_partition=True, page_size=1000)
        apps: builtins.list[App] = []
        continuation: str | None = None
        while True:
            page = self.container.query(query, continuation)
            apps.extend(_app(document) for document in page.documents)
            if page.continuation is None:
                return apps
            continuation = page.continuation

    def _document(self, app_id: str, name: str, limits: AppLimits) -> dict[str, Json]:
        if not isinstance(limits, AppLimits):
            raise InvalidApp("limits must be AppLimits")
        return {
            "id": app_id,
            "type": "app",
            "name": _name(name),
            "limits": limits.to_json(),
            "created_at": self._now(),
            "revoked_at": None,
            "entra_app_id": None,
            "key": None,
        }

    def _read(self, app_id: str) -> dict[str, Json]:
        if not isinstance(app_id, str) or not _is_app_id(app_id):
            raise AppNotFound(f"no app {str(app_id)[:80]!r}")
        try:
            return self.container.read(app_id, app_id)
        except DocumentNotFound:
            raise AppNotFound(f"no app {app_id!r}") from None

    def _patch(self, app_id: str, operations: builtins.list[PatchOperation]) -> dict[str, Json]:
        if not _is_app_id(app_id):
            raise AppNotFound(f"no app {str(app_id)[:80]!r}")
        try:
            return self.container.patch(app_id, app_id, operations)
        except DocumentNotFound:
            raise AppNotFound(f"no app {app_id!r}") from None

    def _now(self) -> str:
        return dt.datetime.fromtimestamp(self._clock(), dt.UTC).strftime(TIME_FORMAT)


class AppKeyResolver:
    """The Authenticator's `KeyResolver` on the registry: a live app's key is a Principal of
    kind `app` whose id is the app's id, in `tenant`, holding `roles` (the gateway's)."""

    def __init__(self, registry: AppRegistry, tenant: str, roles: frozenset[str]) -> None:
        self.registry = registry
        self.tenant = tenant
        self.roles = roles

    def resolve(self, key: str) -> Principal | None:
        try:
            app = self.registry.authenticate(key)
        except UnknownKey:
            return None
        return Principal("app", app.id, self.tenant, self.roles)


def _app(document: dict[str, Any]) -> App:
    limits = AppLimits.from_json(document.get("limits"))
    return App(
        id=str(document["id"]),
        name=str(document.get("name", "")),
        limits=limits,
        created_at=str(document.get("created_at", "")),
        revoked_at=document.get("revoked_at"),
        entra_app_id=document.get("entra_app_id"),
    )


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidApp("an app's name is a non-empty string")
    name = value.strip()
    if len(name) > MAX_NAME or not _NAME.fullmatch(name):
        raise InvalidApp(f"an app's name has at most {MAX_NAME} characters, none a control one")
    return name


def _client_id(value: Any) -> str:
    """An Entra ID application (client) id, canonical: a GUID in lower case."""
    if not isinstance(value, str) or len(value) > 64:
        raise InvalidApp("an Entra ID application id is a GUID")
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise InvalidApp("an Entra ID application id is a GUID") from None


def _is_app_id(value: str) -> bool:
    if value.startswith(ENTRA_PREFIX):
        try:
            return _client_id(value.removeprefix(ENTRA_PREFIX)) == value.removeprefix(ENTRA_PREFIX)
        except InvalidApp:
            return False
    return is_key_app_id(value)
