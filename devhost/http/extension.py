"""The HTTP trigger listener: routes `/<routePrefix>/...` to httpTrigger functions."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import azure.functions as func
from aiohttp import web

from devhost.extension import HostContext
from devhost.http.asgi import AsgiConnection, asgi_scope
from devhost.http.asgi_response import send_asgi_response
from devhost.http.convert import error_response, to_function_request, to_web_response
from devhost.http.limits import (
    BodyRefused,
    HttpLimits,
    read_body,
    refusal_response,
    refuse_declared_length,
)
from devhost.http.routes import RouteTemplate, RouteTemplateError
from devhost.http.streaming import (
    asgi_request,
    asgi_response,
    azure_differences,
    takes_asgi_request,
)
from devhost.indexing import FunctionSpec, IndexingError
from devhost.invocation import FunctionFailed, HostShuttingDown, new_invocation_id
from devhost.keys import enforces_auth, presented_key

ALL_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"})


@dataclass(frozen=True)
class HttpRoute:
    function: FunctionSpec
    template: RouteTemplate
    methods: frozenset[str]
    auth_level: str
    streams: bool = False  # it takes the FastAPI Request: served as an HTTP stream

    def response_value(self, outputs: dict[str, object]) -> object:
        """`$return` when the function returned something, else a named http output it set."""
        if outputs.get("$return") is not None:
            return outputs["$return"]
        for binding in self.function.outputs:
            if binding.type.lower() == "http" and binding.name in outputs:
                return outputs[binding.name]
        return None


def build_routes(functions: list[FunctionSpec]) -> list[HttpRoute]:
    routes = []
    for function in functions:
        trigger = function.trigger
        route = trigger.get("route") or function.name
        try:
            template = RouteTemplate.parse(str(route))
        except RouteTemplateError as error:
            raise IndexingError(
                f"function {function.name!r}, binding {trigger.name!r} (httpTrigger): {error}"
            ) from error
        methods = trigger.get("methods") or sorted(ALL_METHODS)
        routes.append(
            HttpRoute(
                function=function,
                template=template,
                methods=frozenset(str(m).upper() for m in methods),
                auth_level=str(trigger.get("authLevel", "function")).lower(),
                streams=takes_asgi_request(function),
            )
        )
    routes.sort(key=lambda r: r.template.precedence)
    return routes


class RouteTable:
    """The routes in precedence order, found by path and method.

    A path is matched only against the routes that could take its first segment: those whose
    first segment is that literal, and those whose first segment is a parameter (in the same
    precedence order), instead of every route of the app in turn."""

    def __init__(self, routes: list[HttpRoute]) -> None:
        self.routes = routes
        firsts = {_first_literal(r) for r in routes} - {None}
        self._unanchored = tuple(r for r in routes if _first_literal(r) is None)
        self._by_first = {
            first: tuple(r for r in routes if _first_literal(r) in (first, None))
            for first in firsts
        }

    def find(self, path: str, method: str) -> tuple[HttpRoute | None, dict[str, str], set[str]]:
        """The route for a path relative to the prefix, its route values, and the methods the
        routes matching the path allow (for a 405) when none takes this method."""
        first = path.lstrip("/").split("/", 1)[0].lower()
        allowed: set[str] = set()
        for route in self._by_first.get(first, self._unanchored):
            values = route.template.match(path)
            if values is None:
                continue
            if method in route.methods or (method == "HEAD" and "GET" in route.methods):
                return route, values, allowed
            allowed |= route.methods
        return None, {}, allowed


def _first_literal(route: HttpRoute) -> str | None:
    segments = route.template.segments
    if not segments or segments[0].literal is None:
        return None
    return segments[0].literal.lower()


class HttpExtension:
    trigger_types = frozenset({"httptrigger"})

    def __init__(self, context: HostContext, functions: list[FunctionSpec]) -> None:
        self._context = context
        self._table = RouteTable(build_routes(functions))
        self._routes = self._table.routes
        self._prefix = context.host_config.route_prefix
        self.enforce_auth = enforces_auth(context.settings)
        self.limits = HttpLimits.from_settings(context.settings)
        self._streaming: set[AsgiConnection] = set()  # responses being streamed
        streaming = [r.function for r in self._routes if r.streams]
        classic = [r.function for r in self._routes if not r.streams]
        for note in azure_differences(streaming, classic, context.settings):
            context.log.warning("HTTP streams: %s", note)

    def routes(self) -> list[web.RouteDef]:
        prefix = f"/{self._prefix}" if self._prefix else ""
        return [web.route("*", prefix + "/{tail:.*}", self.handle)]

    def describe(self) -> list[str]:
        lines = []
        for route in self._routes:
            methods = ",".join(sorted(route.methods)) if route.methods != ALL_METHODS else "*"
            auth = f" [{route.auth_level}]" if self.enforce_auth else ""
            lines.append(f"{route.function.name}: [{methods}] {self.url(route)}{auth}")
        return lines

    def url(self, route: HttpRoute) -> str:
        prefix = f"/{self._prefix}" if self._prefix else ""
        return f"{self._context.base_url}{prefix}/{route.template.text.strip('/')}"

    def description_url(self) -> str | None:
        """The URL of the app's OpenAPI description, if it serves one (`.../openapi.json`)."""
        for route in self._routes:
            if route.template.text.strip("/").endswith("openapi.json"):
                return self.url(route)
        return None

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        """Responses still streaming end now, as if their callers had left (their iterators are
        closed): an endless stream would otherwise hold the host's shutdown."""
        for connection in list(self._streaming):
            connection.end("the host is stopping")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        route, values, allowed = self._table.find(request.match_info["tail"], request.method)
        if route is None:
            if allowed:
                response = error_response(405, f"method {request.method} is not allowed here")
                response.headers["Allow"] = ", ".join(sorted(allowed))
                return response
            return error_response(404, f"no function serves {request.path}")
        if self.enforce_auth:
            presented = presented_key(request.headers, request.query)
            if not self._context.keys.accepts(route.auth_level, route.function.name, presented):
                return error_response(
                    401, "a valid key is required (x-functions-key header or code query parameter)"
                )
        if route.streams:
            return await self._serve_stream(request, route, values)
        try:
            body = await read_body(request, self.limits)
        except BodyRefused as refused:
            return refusal_response(refused)
        function_request = to_function_request(request, body, values, origin=self._context.base_url)
        try:
            invocation = await self._context.invoker.invoke(
                route.function,
                function_request,
                log_fields={"method": request.method, "path": request.path},
            )
        except HostShuttingDown:
            return error_response(503, "the host is shutting down")
        except FunctionFailed as failure:
            return _failure_response(failure)
        value = route.response_value(invocation.outputs)
        return to_web_response(value, invocation.invocation_id)

    async def _serve_stream(
        self, request: web.Request, route: HttpRoute, values: dict[str, str]
    ) -> web.StreamResponse:
        """A function that takes the FastAPI Request: its body streams in as `receive` reads it
        (within the limits), and a starlette response streams out. The trigger value the
        invoker gets is the `HttpRequest` without its body, for the binding data of inputs."""
        try:
            refuse_declared_length(request, self.limits)
        except BodyRefused as refused:
            return refusal_response(refused)
        invocation_id = new_invocation_id()
        connection = AsgiConnection(request, self.limits)
        scope = asgi_scope(request, values, self._context.base_url, invocation_id)
        watcher = asyncio.ensure_future(connection.watch())
        try:
            try:
                invocation = await self._context.invoker.invoke(
                    route.function,
                    to_function_request(request, b"", values, origin=self._context.base_url),
                    invocation_id=invocation_id,
                    trigger_argument=asgi_request(scope, connection.receive),
                    log_fields={"method": request.method, "path": request.path},
                )
            except HostShuttingDown:
                return error_response(503, "the host is shutting down")
            except FunctionFailed as failure:
                if connection.refusal is not None:
                    return refusal_response(connection.refusal)
                return _failure_response(failure)
            if connection.refusal is not None:  # the function saw a disconnect; the caller, why
                return refusal_response(connection.refusal)
            value = route.response_value(invocation.outputs)
            if isinstance(value, func.HttpResponse):
                return to_web_response(value, invocation_id)
            self._streaming.add(connection)
            return await send_asgi_response(
                request, asgi_response(value), scope, connection, invocation_id, route.function.name
            )
        finally:
            self._streaming.discard(connection)
            connection.end("the response is over")
            watcher.cancel()


def _failure_response(failure: FunctionFailed) -> web.Response:
    response = error_response(
        500, f"function {failure.function!r} failed", invocationId=failure.invocation_id
    )
    response.headers["x-ms-invocation-id"] = failure.invocation_id
    return response
