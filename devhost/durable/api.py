"""The Durable Functions HTTP API (`/runtime/webhooks/durabletask/...`) over the engine."""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from devhost.durable import messages, query
from devhost.durable.engine import Engine, EngineError
from devhost.durable.events import payload_text
from devhost.durable.links import WEBHOOK_PATH, Links
from devhost.durable.status import status_payload
from devhost.durable.store import (
    TERMINAL_STATUSES,
    InstanceQuery,
    Store,
    StoreClosed,
    get_history,
    get_instance,
    list_instances,
    purge_statements,
)
from devhost.extension import WebhookGuard
from devhost.http.convert import function_headers
from devhost.keys import DURABLE_SYSTEM_KEY, HostKeys, presented_key

CONTINUATION_HEADER = "x-ms-continuation-token"
_INVALID_ID = re.compile(r"[/\\#?\x00-\x1f\x7f]")  # as Azure refuses them in instance ids
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadRequest(EngineError):
    status = 400


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


def _error(status: int, message: str) -> web.Response:
    return _json(status, {"message": message, "ExceptionMessage": message})


def _flag(request: web.Request, name: str, default: bool) -> bool:
    try:
        return query.flag(request.query, name, default)
    except query.QueryError as error:
        raise BadRequest(str(error)) from error


def _filters(request: web.Request, *, purge: bool) -> InstanceQuery:
    try:
        if purge:
            return query.purge_query(request.query)
        return query.instance_query(request.query)
    except query.QueryError as error:
        raise BadRequest(str(error)) from error


class DurableApi:
    """Routes for one task hub. The webhooks take the extension's system key when keys are
    enforced; an app with a webhook guard (`devhost.extension.WebhookGuard`) decides instead,
    told whether the call carries the key. The `rpc` routes, under a path keyed by that key,
    answer loopback callers only."""

    def __init__(
        self,
        engine: Engine,
        store: Store,
        links: Links,
        keys: HostKeys,
        enforce_auth: bool,
        guard: WebhookGuard | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.links = links
        self.keys = keys
        self.enforce_auth = enforce_auth
        self.guard = guard

    def routes(self) -> list[web.RouteDef]:
        table: list[tuple[str, str, Handler]] = [
            ("POST", "/orchestrators/{name}", self.start),
            ("POST", "/orchestrators/{name}/{instance_id}", self.start),
            ("GET", "/instances", self.list),
            ("GET", "/instances/", self.list),
            ("DELETE", "/instances", self.purge_many),
            ("DELETE", "/instances/", self.purge_many),
            ("GET", "/instances/{instance_id}", self.status),
            ("DELETE", "/instances/{instance_id}", self.purge_one),
            ("POST", "/instances/{instance_id}/raiseEvent/{event}", self.raise_event),
            ("POST", "/instances/{instance_id}/terminate", self.terminate),
            ("POST", "/instances/{instance_id}/suspend", self.suspend),
            ("POST", "/instances/{instance_id}/resume", self.resume),
            ("POST", "/instances/{instance_id}/restart", self.restart),
        ]
        routes = []
        rpc = self.links.rpc_path
        for method, path, handler in table:
            routes.append(web.route(method, WEBHOOK_PATH + path, self._guard(handler, rpc=False)))
            routes.append(web.route(method, rpc + path, self._guard(handler, rpc=True)))
        return routes

    def _guard(self, handler: Handler, rpc: bool) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if rpc and not _is_loopback(request.remote):
                return _error(403, "the durable RPC endpoint answers loopback callers only")
            if not rpc:
                refused = await self._admit(request)
                if refused is not None:
                    return refused
            hub = request.query.get("taskHub")
            if hub and hub.lower() != self.links.hub.lower():
                return _error(
                    404,
                    f"task hub '{hub}' is not served here (this host serves '{self.links.hub}')",
                )
            try:
                return await handler(request)
            except EngineError as error:
                return _error(error.status, str(error))
            except StoreClosed:
                return _error(503, "the host is shutting down")

        return guarded

    async def _admit(self, request: web.Request) -> web.Response | None:
        """None when a webhook call may go on, else the answer."""
        code = presented_key(request.headers, request.query)
        has_key = self.keys.accepts_system(DURABLE_SYSTEM_KEY, code)
        if self.guard is not None:
            verdict = await asyncio.to_thread(
                self.guard, request.method, request.path, function_headers(request), has_key
            )
            if verdict is None:
                return None
            status, message, headers = verdict
            response = _error(status, message)
            response.headers.update(headers)
            return response
        if self.enforce_auth and not has_key:
            return _error(
                401,
                f"the Durable extension's system key ({DURABLE_SYSTEM_KEY}) or the master "
                "key is required (code query parameter or x-functions-key header)",
            )
        return None

    async def _payload(self, request: web.Request) -> str | None:
        body = await request.read()
        try:
            return payload_text(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise BadRequest(f"the request body must be JSON: {error}") from error

    async def start(self, request: web.Request) -> web.Response:
        instance_id = request.match_info.get("instance_id")
        if instance_id is not None and _INVALID_ID.search(instance_id):
            raise BadRequest(
                f"instance ID {instance_id!r} must not contain '/', '\\', '#', '?' or control "
                "characters"
            )
        payload = await self._payload(request)
        record = await self.engine.start_instance(
            request.match_info["name"],
            request.match_info.get("instance_id"),
            payload,
            request.query.get("version"),
        )
        links = self.links.management(record.instance_id)
        return _json(202, links, {"Location": links["statusQueryGetUri"], "Retry-After": "1"})

    async def status(self, request: web.Request) -> web.Response:
        instance_id = request.match_info["instance_id"]
        show_history = _flag(request, "showHistory", False)
        record = await self.store.aread(lambda c: get_instance(c, instance_id))
        if record is None:
            return _error(404, f"no instance with ID '{instance_id}'")
        history = (
            await self.store.aread(lambda c: get_history(c, instance_id)) if show_history else None
        )
        body = status_payload(
            record,
            show_input=_flag(request, "showInput", True),
            history=history,
            show_history_output=_flag(request, "showHistoryOutput", False),
        )
        if record.status == "Completed":
            return _json(200, body)
        if record.status in ("Failed", "Terminated", "Canceled"):
            failed_500 = record.status == "Failed" and _flag(
                request, "returnInternalServerErrorOnFailure", False
            )
            return _json(500 if failed_500 else 400, body)
        links = self.links.management(instance_id)
        return _json(202, body, {"Location": links["statusQueryGetUri"], "Retry-After": "1"})

    async def list(self, request: web.Request) -> web.Response:
        filters = _filters(request, purge=False)
        try:
            top = query.top(request.query.get("top"))
        except query.QueryError as error:
            raise BadRequest(str(error)) from error
        after = _decode_token(request.headers.get(CONTINUATION_HEADER))
        records = await self.store.aread(lambda c: list_instances(c, filters, top, after))
        show_input = _flag(request, "showInput", True)
        body = [status_payload(record, show_input=show_input) for record in records]
        headers = {}
        if top is not None and len(records) == top:
            last = records[-1]
            headers[CONTINUATION_HEADER] = _encode_token(f"{last.created_time}|{last.instance_id}")
        return _json(200, body, headers)

    async def raise_event(self, request: web.Request) -> web.Response:
        payload = await self._payload(request)
        await self.engine.raise_event(
            request.match_info["instance_id"], request.match_info["event"], payload
        )
        return web.Response(status=202)

    async def _control(self, request: web.Request, kind: str) -> web.Response:
        await self.engine.control(
            request.match_info["instance_id"], kind, request.query.get("reason")
        )
        return web.Response(status=202)

    async def terminate(self, request: web.Request) -> web.Response:
        return await self._control(request, messages.TERMINATE)

    async def suspend(self, request: web.Request) -> web.Response:
        return await self._control(request, messages.SUSPEND)

    async def resume(self, request: web.Request) -> web.Response:
        return await self._control(request, messages.RESUME)

    async def restart(self, request: web.Request) -> web.Response:
        instance_id = request.match_info["instance_id"]
        record = await self.store.aread(lambda c: get_instance(c, instance_id))
        if record is None:
            return _error(404, f"no instance with ID '{instance_id}'")
        new_id = None if _flag(request, "restartWithNewInstanceId", True) else instance_id
        started = await self.engine.start_instance(
            record.name, new_id, record.input, record.version
        )
        return _json(202, started.instance_id)

    async def purge_one(self, request: web.Request) -> web.Response:
        instance_id = request.match_info["instance_id"]
        record = await self.store.aread(lambda c: get_instance(c, instance_id))
        if record is None:
            return _error(404, f"no instance with ID '{instance_id}'")
        if record.status not in TERMINAL_STATUSES or instance_id in self.engine.instances:
            return _error(
                412,  # Azure's answer: Precondition Failed
                "Only orchestrations in a terminal state can be purged, but the orchestration "
                f"with instance ID {instance_id} has status {record.status}",
            )
        await self.store.write(purge_statements(instance_id))
        return _json(200, {"instancesDeleted": 1})

    async def purge_many(self, request: web.Request) -> web.Response:
        filters = _filters(request, purge=True)
        records = await self.store.aread(lambda c: list_instances(c, filters, None, None))
        doomed = [r.instance_id for r in records if r.instance_id not in self.engine.instances]
        if not doomed:
            return _error(404, "no finished instance matches")
        statements = [s for instance_id in doomed for s in purge_statements(instance_id)]
        await self.store.write(statements)
        return _json(200, {"instancesDeleted": len(doomed)})


def _is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def _encode_token(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode()


def _decode_token(token: str | None) -> str | None:
    if not token or token == "null":
        return None
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError) as error:
        raise BadRequest(f"invalid {CONTINUATION_HEADER}") from error
