"""Who may call each route: one permission per HTTP function, declared next to its trigger and
checked before the function body runs.

    @bp.route(route="events", methods=["POST"])
    @requires(Role.WRITER)
    async def post_events(req: func.HttpRequest) -> func.HttpResponse: ...

- The caller is authenticated by the platform's `Authenticator` (`PLATFORM_AUTH`). None: 401
  with `WWW-Authenticate: Bearer error="invalid_token"` and a short reason. A caller without
  the permission: 403 naming it. Neither says more (no key ids, no stack).
- Every request leaves one audit record, allowed or refused, group-committed without making
  the answer wait. A privileged action (`action=`) is audited durably before the body runs,
  and refused with 503 when the trail cannot take the record (fail closed); a plain read goes
  on when the trail is down, and the trail counts the records it missed.
- `public` marks the one route open to anyone (the health probe); `check_declared` refuses an
  app whose HTTP function declares neither.
- The body reaches its caller through `caller()`.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import azure.durable_functions as df
import azure.functions as func

from functions.http_types import (
    Request,
    Response,
    annotations_of,
    fastapi_signature,
    in_thread,
    joined_headers,
    takes_fastapi_request,
    to_function_request,
    to_response,
)
from shared.audit.events import Actor, AuditEvent, AuditUnavailable, Outcome
from shared.bootstrap import Platform, current_platform
from shared.identity.authenticator import client_address
from shared.identity.principal import AuthenticationError, Principal
from shared.identity.roles import Role

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
PERMISSION_ATTRIBUTE = "__platform_permission__"
PUBLIC = "public"
UNOPENED = 0  # request records dropped because the audit store could not be opened at all
_CALLER: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("caller", default=None)


def caller() -> Principal:
    """The authenticated caller of the route being served."""
    found = _CALLER.get()
    if found is None:
        raise RuntimeError("caller() is only known inside a route guarded by requires()")
    return found


def public(function: F) -> F:
    """Open to anyone: the health probe only (nothing else is open to any caller)."""
    entry = _Entry.of(function)

    async def open_route(*args: Any, **kwargs: Any) -> Response:
        req, rest = entry.split(args, kwargs)
        argument: Any = req
        if not entry.native:
            argument = await to_function_request(req, joined_headers(req))
        if entry.is_async:
            return to_response(await function(argument, **rest))
        return to_response(await in_thread(function, argument, **rest))

    return cast(F, entry.dress(open_route, PUBLIC))


def requires(permission: Role, *, action: str | None = None) -> Callable[[F], F]:
    """Guard an HTTP function with one permission; `action` names a privileged action.

    The guarded function is what the worker indexes: it takes the FastAPI `Request` and
    returns a FastAPI response (`functions.http_types`). A function written for
    `func.HttpRequest` gets one, its body read whole first (as the Functions host reads a
    classic function's, within its size limit); a sync one runs, with the admission, on one
    worker thread."""

    def decorate(function: F) -> F:
        entry = _Entry.of(function)

        async def guarded(*args: Any, **kwargs: Any) -> Response:
            req, rest = entry.split(args, kwargs)
            headers = joined_headers(req)
            call = _Call(req.method, req.url.path, headers)
            platform = current_platform()
            argument: Any = req
            if not entry.native:
                argument = await to_function_request(req, headers)
            if not entry.is_async:
                result = await in_thread(
                    _admitted_call, platform, call, permission, action, function, argument, rest
                )
                return to_response(result)
            admitted = await in_thread(_admit, platform, call, permission, action)
            if isinstance(admitted, _Refusal):
                return to_response(_answer(admitted))
            token = _CALLER.set(admitted)
            try:
                response = to_response(await function(argument, **rest))
            except BaseException:
                _served(platform, call, admitted, 500)
                raise
            finally:
                _CALLER.reset(token)
            _served(platform, call, admitted, response.status_code)
            return response

        return cast(F, entry.dress(guarded, permission.value))

    return decorate


def _admitted_call(
    platform: Platform,
    call: _Call,
    permission: Role,
    action: str | None,
    function: Callable[..., Any],
    argument: Any,
    rest: dict[str, Any],
) -> Any:
    """Admit the caller and run a sync route, on one worker thread."""
    admitted = _admit(platform, call, permission, action)
    if isinstance(admitted, _Refusal):
        return _answer(admitted)
    token = _CALLER.set(admitted)
    try:
        response = function(argument, **rest)
    except BaseException:
        _served(platform, call, admitted, 500)
        raise
    finally:
        _CALLER.reset(token)
    _served(platform, call, admitted, _status(response))
    return response


@dataclass(frozen=True)
class _Entry:
    """How an HTTP function is called: its request parameter, whether it is written for the
    FastAPI types (`native`) and whether it is a coroutine function."""

    function: Callable[..., Any]
    parameter: str
    native: bool
    is_async: bool

    @classmethod
    def of(cls, function: Callable[..., Any]) -> _Entry:
        parameter = _request_parameter(function)
        return cls(
            function,
            parameter,
            takes_fastapi_request(function, parameter),
            inspect.iscoroutinefunction(function),
        )

    def split(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Request, dict[str, Any]]:
        """The request, and the other arguments by name (the worker passes all by name)."""
        rest = dict(kwargs)
        req = rest.pop(self.parameter, None)
        if req is None and args:
            req, extra = args[0], args[1:]
            if extra:
                raise TypeError("an HTTP route takes its bindings by name after the request")
        if not isinstance(req, Request):
            raise TypeError("an HTTP route was called without its FastAPI request")
        return req, rest

    def dress(self, wrapper: Callable[..., Any], permission: str) -> Callable[..., Any]:
        """`wrapper` as the worker sees the route: its name, and its signature in FastAPI types."""
        functools.update_wrapper(wrapper, self.function)
        signature = fastapi_signature(self.function, self.parameter)
        wrapper.__signature__ = signature  # type: ignore[attr-defined]
        wrapper.__annotations__ = annotations_of(signature)
        setattr(wrapper, PERMISSION_ATTRIBUTE, permission)
        return wrapper


def declared_permission(function: Callable[..., Any]) -> str | None:
    """What an HTTP function declared: a role, `public`, or None."""
    found = getattr(function, PERMISSION_ATTRIBUTE, None)
    return found if isinstance(found, str) else None


class PlatformApp(df.DFApp):
    """The platform's function app: indexing it (the worker's, or the devhost's, call to
    `get_functions`) fails, naming the function, when an HTTP route declares no permission.
    Under the devhost it also guards the Durable management API (`guard_extension_webhook`)."""

    def get_functions(self) -> list[Any]:
        functions = list(super().get_functions())
        check_declared(functions)
        return functions

    def guard_extension_webhook(
        self, method: str, path: str, headers: Mapping[str, str], has_key: bool
    ) -> tuple[int, str, dict[str, str]] | None:
        """The devhost's question about a call to an extension webhook (the Durable management
        API); see `guard_webhook`."""
        refused = guard_webhook(current_platform(), method, path, headers, has_key)
        return None if refused is None else (refused.status, refused.message, refused.headers)


# The Durable management API (`/runtime/webhooks/durabletask/...`). Azure's host takes the
# extension's system key there and asks the app nothing, so these calls are the host's to
# log. Under the devhost, the platform decides: the system key (which the SDK's own client
# carries), or a caller holding WEBHOOK_PERMISSION; with neither, 401, whether or not the host
# enforces keys. Every call is audited, a change to an instance durably before it is made.
WEBHOOK_PERMISSION = Role.OPERATOR
WEBHOOK_ACTIONS = {
    "terminate": "instance_terminated",
    "suspend": "instance_suspended",
    "resume": "instance_resumed",
    "restart": "instance_restarted",
}
KEY_ACTOR = Actor("system_key", "durabletask_extension")  # a key is not an identity


def guard_webhook(
    platform: Platform, method: str, path: str, headers: Mapping[str, str], has_key: bool
) -> _Refusal | None:
    """None when a call to the Durable management API may go on, else the refusal."""
    call = _Call(method.upper(), path, headers)
    if has_key:
        actor = KEY_ACTOR
    else:
        admitted = _admit(platform, call, WEBHOOK_PERMISSION, None)
        if isinstance(admitted, _Refusal):
            return admitted
        actor = Actor.of(admitted)
    action = webhook_action(call.method, call.path)
    if action is not None:
        return _privileged(platform, call, actor, action)
    _record(platform, call, actor, "request", "allowed", "", None)
    return None


def webhook_action(method: str, path: str) -> str | None:
    """The privileged action a call to the Durable management API takes, if any."""
    if method == "DELETE":
        return "instance_purged"
    if method != "POST":
        return None
    # /runtime/webhooks/durabletask/orchestrators/{name}[/{id}] or .../instances/{id}/{verb}
    parts = path.strip("/").split("/")[3:]
    if parts[:1] == ["orchestrators"]:
        return "orchestration_started"
    if len(parts) >= 3 and parts[2] == "raiseEvent":
        return "instance_event_raised"
    verb = parts[2] if len(parts) == 3 else ""
    return WEBHOOK_ACTIONS.get(verb, "instance_changed")


def check_declared(functions: Iterable[Any]) -> None:
    """Refuse to load an app with an HTTP function that declares no permission (`functions`
    are the app's `get_functions()`), naming the function."""
    for function in functions:
        bindings = function.get_bindings()
        if not any(getattr(b, "type", None) == "httpTrigger" for b in bindings):
            continue
        if declared_permission(function.get_user_function()) is None:
            raise RuntimeError(
                f"the HTTP function {function.get_function_name()!r} declares no permission: "
                "add @requires(Role....) under its route (or @public for an anonymous probe)"
            )


# The guard


@dataclass(frozen=True)
class _Call:
    """A call as the guard sees it: never its query, its body or its keys."""

    method: str
    path: str
    headers: Mapping[str, str]


@dataclass(frozen=True)
class _Refusal:
    """The answer to a call that may not go on."""

    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)


def _admit(
    platform: Platform, call: _Call, permission: Role, action: str | None
) -> Principal | _Refusal:
    """The caller, when it may go on; else the refusal (401, 403 or 503), audited."""
    try:
        principal = platform.authenticator.authenticate(call.headers)
    except AuthenticationError as error:
        _record(platform, call, Actor.of(None), error.action, "failure", error.reason, 401)
        challenge = {"WWW-Authenticate": _challenge(error.reason)}
        return _Refusal(401, f"unauthenticated: {error.reason}", challenge)
    if not principal.holds(permission.value):
        reason = f"needs the permission {permission.value}"
        _record(platform, call, Actor.of(principal), "authz_fail", "denied", reason, 403)
        return _Refusal(403, f"forbidden: this {reason}")
    if action is not None:
        refused = _privileged(platform, call, Actor.of(principal), action)
        if refused is not None:
            return refused
    return principal


def _privileged(platform: Platform, call: _Call, actor: Actor, action: str) -> _Refusal | None:
    """Record a privileged action durably before it runs; a refusal (503) when the trail
    cannot (fail closed)."""
    trail = _trail(platform)
    try:
        if trail is None:
            raise AuditUnavailable("the audit store could not be opened")
        trail.append(_event(call, actor, action, "allowed", "", None))
    except AuditUnavailable:
        log.error("audit trail unavailable: refused %s", action)
        return _Refusal(503, "the audit trail is unavailable; try again later")
    return None


def _served(platform: Platform, call: _Call, principal: Principal, status: int) -> None:
    outcome: Outcome = "success" if status < 400 else "failure"
    _record(platform, call, Actor.of(principal), "request", outcome, "", status)


def _record(
    platform: Platform,
    call: _Call,
    actor: Actor,
    action: str,
    outcome: Outcome,
    reason: str,
    status: int | None,
) -> None:
    """A request's record, group-committed without waiting (the trail counts the ones it
    could not keep in `misses`; `UNOPENED` counts those it never saw, with no store)."""
    trail = _trail(platform)
    if trail is None:
        global UNOPENED
        UNOPENED += 1
        return
    trail.submit(_event(call, actor, action, outcome, reason, status))


def _trail(platform: Platform) -> Any:
    """The platform's audit trail, or None when its store cannot be opened (it is tried again
    on the next request)."""
    try:
        return platform.audit
    except Exception as error:  # the store is down: privileged actions refuse, reads go on
        log.warning("audit trail unavailable: %s", type(error).__name__)
        return None


def _event(
    call: _Call,
    actor: Actor,
    action: str,
    outcome: Outcome,
    reason: str,
    status: int | None,
) -> AuditEvent:
    return AuditEvent(
        action=action,
        outcome=outcome,
        actor=actor,
        resource=f"{call.method} {call.path}",  # never the query or the body
        reason=reason,
        status=status,
        client=client_address(call.headers),
        traceparent=call.headers.get("traceparent", "").strip().lower()[:64],  # checked later
    )


# Helpers


def _request_parameter(function: Callable[..., Any]) -> str:
    for name, parameter in inspect.signature(function).parameters.items():
        annotation = parameter.annotation
        if annotation in (func.HttpRequest, "func.HttpRequest", "HttpRequest", "Request") or (
            isinstance(annotation, type) and issubclass(annotation, Request)
        ):
            return name
    raise TypeError(
        f"{function.__name__}: an HTTP route takes a func.HttpRequest or a FastAPI Request"
    )


def _status(response: Any) -> int:
    return response.status_code if isinstance(response, (func.HttpResponse, Response)) else 200


def _challenge(reason: str) -> str:
    described = reason.replace('"', "'").replace("\\", "/")
    return f'Bearer error="invalid_token", error_description="{described}"'


def _answer(refusal: _Refusal) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps({"error": refusal.message}),
        status_code=refusal.status,
        mimetype="application/json",
        headers=refusal.headers,
    )
