"""The route guard: one permission per HTTP function, checked before the body runs, every
request audited, privileged actions refused when the trail is down, and an app whose route
declares nothing refused at load."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from devhost.indexing import load_app
from functions import access
from functions.access import (
    PlatformApp,
    caller,
    check_declared,
    declared_permission,
    public,
    requires,
)
from shared.audit.events import AuditEvent, AuditUnavailable
from shared.bootstrap import Lazy, Platform, bootstrap
from shared.config import AuthMode, AuthSettings, load_settings
from shared.identity.authenticator import Authenticator
from shared.identity.roles import Role
from shared.openapi import PERMISSIONS
from tests.devhost_process import PROJECT_ROOT
from tests.functions import call_route
from tests.tokens import AUDIENCE, TENANT, Issuer

pytestmark = pytest.mark.unit


class Trail:
    def __init__(self, *, down: bool = False) -> None:
        self.events: list[AuditEvent] = []
        self.down = down

        self.misses = 0

    def append(self, event: AuditEvent) -> None:
        if self.down:
            raise AuditUnavailable("the store is down")
        self.events.append(event)

    def submit(self, event: AuditEvent) -> None:
        try:
            self.append(event)
        except AuditUnavailable:
            self.misses += 1


@pytest.fixture
def issuer(tmp_path: Path) -> Issuer:
    return Issuer(tmp_path / "issuer")


@pytest.fixture
def guarded_platform(
    tmp_path: Path, issuer: Issuer, installed: Callable[[Any], Any]
) -> Callable[[Trail], Platform]:
    base = bootstrap(load_settings({"PLATFORM_DATA_DIR": str(tmp_path / "platform")}))
    settings = AuthSettings(
        AuthMode.ENTRA, tenant_id=TENANT, audiences=(AUDIENCE,), jwks_url=str(issuer.jwks_path)
    )

    def make(trail: Trail) -> Platform:
        platform = dataclasses.replace(
            base, authenticator=Authenticator(settings), lazy_audit=Lazy(lambda: trail)
        )
        installed(platform)
        return platform

    return make


def _request(token: str | None = None) -> func.HttpRequest:
    headers = {"x-forwarded-for": "127.0.0.1"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return func.HttpRequest(
        "POST", "http://localhost/api/things?secret=1", body=b"", headers=headers
    )


@requires(Role.OPERATOR, action="thing_started")
async def start_thing(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"by": caller().id}), status_code=202)


@requires(Role.READER)
def read_thing(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(caller().kind)


async def test_the_guard_authenticates_authorises_and_audits(
    guarded_platform: Callable[[Trail], Platform], issuer: Issuer
) -> None:
    trail = Trail()
    guarded_platform(trail)
    missing = await call_route(start_thing, _request())
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    forbidden = await call_route(start_thing, _request(issuer.token(roles=["Platform.Analyst"])))
    assert forbidden.status_code == 403
    assert "Platform.Operator" in json.loads(forbidden.get_body())["error"]
    allowed = await call_route(start_thing, _request(issuer.token(roles=["Platform.Operator"])))
    assert allowed.status_code == 202 and json.loads(allowed.get_body()) == {"by": "user-oid-1"}
    assert (
        await call_route(read_thing, _request(issuer.token(roles=["Platform.Admin"])))
    ).get_body() == b"user"
    kinds = [(e.action, e.outcome, e.status) for e in trail.events]
    assert kinds == [
        ("authn_token_missing", "failure", 401),
        ("authz_fail", "denied", 403),
        ("thing_started", "allowed", None),
        ("request", "success", 202),
        ("request", "success", 200),
    ]
    assert all(e.resource == "POST /api/things" for e in trail.events)  # never the query
    assert trail.events[1].actor.id == "user-oid-1" and trail.events[0].actor.kind == "anonymous"


async def test_privileged_actions_fail_closed_and_reads_go_on_without_the_trail(
    guarded_platform: Callable[[Trail], Platform], issuer: Issuer
) -> None:
    trail = Trail(down=True)
    guarded_platform(trail)
    token = issuer.token(roles=["Platform.Operator"])
    refused = await call_route(start_thing, _request(token))
    assert refused.status_code == 503 and "audit" in json.loads(refused.get_body())["error"]
    assert (await call_route(read_thing, _request(token))).status_code == 200
    assert trail.misses == 1


def test_an_app_whose_route_declares_nothing_is_refused_naming_it() -> None:
    app = func.FunctionApp()

    @app.route(route="open")
    def forgotten(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("")

    @app.route(route="probe")
    @public
    def probe(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("")

    with pytest.raises(RuntimeError, match="'forgotten' declares no permission"):
        check_declared(app.get_functions())


def test_a_guard_needs_a_request_parameter() -> None:
    with pytest.raises(TypeError, match="func.HttpRequest"):

        @requires(Role.READER)
        def no_request(timer: func.TimerRequest) -> None: ...


def test_every_route_of_the_app_declares_the_permission_of_the_table(platform_env: Path) -> None:
    """The permission each route declares is the one the OpenAPI description (and the README)
    states; health is the one public route."""
    declared = {}
    for function in load_app(PROJECT_ROOT).get_functions():
        if any(b.type == "httpTrigger" for b in function.get_bindings()):
            declared[function.get_function_name()] = declared_permission(
                function.get_user_function()
            )
    assert declared.pop("health") == "public"
    assert declared == {name: role.value for name, (role, _) in PERMISSIONS.items()}


def test_the_platform_app_refuses_to_index_an_undeclared_route() -> None:
    app = PlatformApp()

    @app.route(route="open")
    def forgotten(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("")

    with pytest.raises(RuntimeError, match="'forgotten' declares no permission"):
        app.get_functions()


async def test_an_audit_store_that_cannot_be_opened_fails_privileged_actions_only(
    guarded_platform: Callable[[Trail], Platform], issuer: Issuer, installed: Callable[[Any], Any]
) -> None:
    platform = guarded_platform(Trail())

    def unreachable() -> Any:
        raise ConnectionError("the Cosmos DB account does not answer")

    installed(dataclasses.replace(platform, lazy_audit=Lazy(unreachable)))
    token = issuer.token(roles=["Platform.Operator"])
    assert (await call_route(start_thing, _request(token))).status_code == 503
    dropped = access.UNOPENED
    assert (await call_route(read_thing, _request(token))).status_code == 200
    assert access.UNOPENED == dropped + 1


@pytest.mark.parametrize(
    ("method", "path", "action"),
    [
        ("GET", "/runtime/webhooks/durabletask/instances", None),
        ("GET", "/runtime/webhooks/durabletask/instances/abc", None),
        ("POST", "/runtime/webhooks/durabletask/orchestrators/medallion", "orchestration_started"),
        ("POST", "/runtime/webhooks/durabletask/orchestrators/m/id-1", "orchestration_started"),
        ("DELETE", "/runtime/webhooks/durabletask/instances/abc", "instance_purged"),
        ("DELETE", "/runtime/webhooks/durabletask/instances", "instance_purged"),
        ("POST", "/runtime/webhooks/durabletask/instances/abc/terminate", "instance_terminated"),
        ("POST", "/runtime/webhooks/durabletask/instances/abc/suspend", "instance_suspended"),
        ("POST", "/runtime/webhooks/durabletask/instances/abc/resume", "instance_resumed"),
        ("POST", "/runtime/webhooks/durabletask/instances/abc/restart", "instance_restarted"),
        (
            "POST",
            "/runtime/webhooks/durabletask/instances/abc/raiseEvent/go",
            "instance_event_raised",
        ),
        (
            "POST",
            "/runtime/webhooks/durabletask/instances/orchestrators/terminate",
            "instance_terminated",
        ),
        ("POST", "/runtime/webhooks/durabletask/instances/abc/rewind", "instance_changed"),
        ("POST", "/runtime/webhooks/durabletask", "instance_changed"),
    ],
)
def test_each_change_through_the_durable_api_is_a_privileged_action(
    method: str, path: str, action: str | None
) -> None:
    assert access.webhook_action(method, path) == action


def test_the_durable_api_takes_the_key_or_an_operator_and_audits_either(
    guarded_platform: Callable[[Trail], Platform], issuer: Issuer
) -> None:
    trail = Trail()
    platform = guarded_platform(trail)
    purge = ("DELETE", "/runtime/webhooks/durabletask/instances/abc")
    loopback = {"x-forwarded-for": "127.0.0.1"}

    def guard(headers: dict[str, str], has_key: bool, call: tuple[str, str] = purge) -> Any:
        return access.guard_webhook(platform, *call, {**loopback, **headers}, has_key)

    missing = guard({}, False)
    assert missing is not None and missing.status == 401
    assert missing.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    reader = {"authorization": f"Bearer {issuer.token(roles=['Platform.Reader'])}"}
    refused = guard(reader, False)
    assert refused is not None and refused.status == 403 and "Platform.Operator" in refused.message
    operator = {"authorization": f"Bearer {issuer.token(roles=['Platform.Operator'])}"}
    assert guard(operator, False) is None
    assert guard({}, True) is None
    assert guard({}, True, ("GET", "/runtime/webhooks/durabletask/instances")) is None
    actions = [(e.action, e.actor.kind, e.outcome) for e in trail.events]
    assert actions == [
        ("authn_token_missing", "anonymous", "failure"),
        ("authz_fail", "user", "denied"),
        ("instance_purged", "user", "allowed"),
        ("instance_purged", "system_key", "allowed"),
        ("request", "system_key", "allowed"),
    ]
    assert all(e.resource.startswith(("DELETE /runtime", "GET /runtime")) for e in trail.events)
    trail.down = True  # a change is refused without its record; a read goes on
    down = guard(operator, False)
    assert down is not None and down.status == 503
    assert guard(operator, False, ("GET", "/runtime/webhooks/durabletask/instances")) is None


def test_the_platform_app_answers_the_devhosts_webhook_question(
    guarded_platform: Callable[[Trail], Platform],
) -> None:
    guarded_platform(Trail())
    answer = PlatformApp().guard_extension_webhook(
        "GET", "/runtime/webhooks/durabletask/instances", {"x-forwarded-for": "10.0.0.1"}, False
    )
    assert answer is not None and answer[0] == 401 and "WWW-Authenticate" in answer[2]
