"""Invoke user functions as the Python worker does: async on the loop, sync in a thread pool."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import random
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import azure.functions as func
from azure.functions import _abc as functions_abc

from devhost.indexing import BindingSpec, FunctionSpec
from embedded.function_threads import FunctionThreads

log = logging.getLogger("devhost.invocation")
_log_json = json.JSONEncoder(default=str).encode  # one encoder, not one per line

T = TypeVar("T")

InputProvider = Callable[[BindingSpec, FunctionSpec], Any]
# Reads an input binding's value for one invocation from the trigger's value (which binding
# expressions such as `{id}` refer to); awaited, so that it can read a store off the loop.
BoundInputProvider = Callable[[BindingSpec, FunctionSpec, Any], Awaitable[Any]]
OutputSink = Callable[[BindingSpec, FunctionSpec, Any], Awaitable[None]]


# Invocation and trace ids: random, not secret. Drawn from a generator seeded once from the OS,
# since `uuid.uuid4` reads `os.urandom` on every call, a system call per invocation that also
# gives up the GIL on the event loop's thread.
_ids = random.Random()
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))  # the version and variant bits
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant


def new_invocation_id() -> str:
    """A random (version 4) UUID, as text."""
    digits = f"{_ids.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


class HostShuttingDown(RuntimeError):
    """The host has stopped taking new work."""


class FunctionFailed(Exception):
    """The user function raised; the cause is chained."""

    def __init__(self, function: str, invocation_id: str, error: BaseException) -> None:
        super().__init__(f"function {function!r} failed (invocation {invocation_id}): {error!r}")
        self.function = function
        self.invocation_id = invocation_id
        self.error = error


class OutValue(func.Out[T], Generic[T]):
    """The `func.Out[T]` a function receives for an output binding parameter."""

    def __init__(self) -> None:
        self._value: T | None = None
        self.was_set = False

    def set(self, val: T) -> None:
        self._value = val
        self.was_set = True

    def get(self) -> T:
        return self._value  # type: ignore[return-value]


class _TraceContext(functions_abc.TraceContext):
    def __init__(self, trace_parent: str) -> None:
        self._trace_parent = trace_parent

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return self._trace_parent

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RpcException(functions_abc.RpcException):
    """The previous attempt's failure, as the host reports it; empty on a first attempt."""

    def __init__(self, error: BaseException | None) -> None:
        self._error = error

    @property
    def source(self) -> str:
        return type(self._error).__module__ if self._error is not None else ""

    @property
    def stack_trace(self) -> str:
        if self._error is None:
            return ""
        return "".join(traceback.format_exception(self._error)).rstrip()

    @property
    def message(self) -> str:
        if self._error is None:
            return ""
        return f"{type(self._error).__name__}: {self._error}"


class _RetryContext(functions_abc.RetryContext):
    def __init__(
        self, retry_count: int, max_retry_count: int, error: BaseException | None = None
    ) -> None:
        self._retry_count = retry_count
        self._max_retry_count = max_retry_count
        self._exception = _RpcException(error)

    @property
    def retry_count(self) -> int:
        return self._retry_count

    @property
    def max_retry_count(self) -> int:
        return self._max_retry_count

    @property
    def exception(self) -> functions_abc.RpcException:
        return self._exception


class InvocationContext(func.Context):
    """The `context: func.Context` argument."""

    def __init__(
        self,
        invocation_id: str,
        function: FunctionSpec,
        retry: functions_abc.RetryContext | None = None,
    ) -> None:
        self._invocation_id = invocation_id
        self._function = function
        self._thread_local = threading.local()
        trace_id, span_id = _ids.getrandbits(128), _ids.getrandbits(64)
        self._trace = _TraceContext(f"00-{trace_id:032x}-{span_id:016x}-01")
        self._retry = retry or _RetryContext(0, 0)

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> type[threading.local]:
        return self._thread_local  # type: ignore[return-value]

    @property
    def function_name(self) -> str:
        return self._function.name

    @property
    def function_directory(self) -> str:
        code = getattr(self._function.user_function, "__code__", None)
        return str(code.co_filename) if code is not None else ""

    @property
    def trace_context(self) -> functions_abc.TraceContext:
        return self._trace

    @property
    def retry_context(self) -> functions_abc.RetryContext:
        return self._retry


@dataclass(frozen=True)
class _CallPlan:
    """How a function's parameters are filled, worked out once per function: each parameter
    with its binding (None for one bound to none) and whether it takes the trigger's value."""

    function: FunctionSpec
    parameters: tuple[tuple[str, BindingSpec | None, bool], ...]
    inputs: tuple[BindingSpec, ...]  # input bindings the function has a parameter for
    outputs: Mapping[str, BindingSpec]
    returns: bool  # it has a `$return` output
    is_async: bool

    @classmethod
    def of(cls, function: FunctionSpec) -> _CallPlan:
        bindings = {b.name: b for b in function.bindings}
        parameters = []
        for name in function.parameters:
            binding = bindings.get(name)
            takes_trigger = binding is function.trigger or (
                binding is not None and binding.is_trigger
            )
            parameters.append((name, binding, takes_trigger))
        outputs = {b.name: b for b in reversed(function.outputs)}  # the first of a name wins
        return cls(
            function,
            tuple(parameters),
            tuple(b for b in function.inputs if b.name in function.parameters),
            outputs,
            "$return" in outputs,
            function.is_async,
        )


@dataclass
class Invocation:
    """What one invocation produced: output binding values by name, `$return` included."""

    invocation_id: str
    function: str
    duration_s: float
    outputs: dict[str, Any] = field(default_factory=dict)
    result: Any = None

    @property
    def return_value(self) -> Any:
        return self.outputs.get("$return")


class Invoker:
    """Runs functions, tracks the ones in flight, and logs one line per invocation."""

    def __init__(self, *, max_threads: int | None = None) -> None:
        self._threads = FunctionThreads(max_threads)
        self._inputs: dict[str, InputProvider] = {}
        self._bound_inputs: dict[str, BoundInputProvider] = {}
        self._sinks: dict[str, OutputSink] = {}
        self._plans: dict[str, _CallPlan] = {}
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._accepting = True

    @property
    def accepting(self) -> bool:
        return self._accepting

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def register_input(self, binding_type: str, provider: InputProvider) -> None:
        """Supply the value of a non-trigger input binding of this type (e.g. durableClient)."""
        self._inputs[binding_type.lower()] = provider

    def register_bound_input(self, binding_type: str, provider: BoundInputProvider) -> None:
        """Supply the value of an input binding of this type that depends on the trigger's value
        (e.g. cosmosDB with `id: "{id}"`); read before the function is called."""
        self._bound_inputs[binding_type.lower()] = provider

    def register_output(self, binding_type: str, sink: OutputSink) -> None:
        """Deliver values set on output bindings of this type after the function returns."""
        self._sinks[binding_type.lower()] = sink

    async def invoke(
        self,
        function: FunctionSpec,
        trigger_value: Any,
        *,
        invocation_id: str | None = None,
        retry_count: int = 0,
        max_retry_count: int = 0,
        retry_error: BaseException | None = None,
        extra_inputs: Mapping[str, Any] | None = None,
        log_fields: Mapping[str, Any] | None = None,
        trigger_argument: Any = None,
    ) -> Invocation:
        """Call the function with its trigger value bound to the trigger's parameter.

        `trigger_argument`, when given, is what the trigger's parameter receives instead (an
        HTTP stream's FastAPI `Request`); the trigger value still gives the binding data that
        input bindings such as `{id}` read.

        `retry_count`, `max_retry_count` and `retry_error` (the previous attempt's failure)
        fill `context.retry_context`, as the host's retry context does.

        Raises FunctionFailed if the function raises, HostShuttingDown if the host is stopping.
        """
        if not self._accepting:
            raise HostShuttingDown("the host is shutting down")
        invocation_id = invocation_id or new_invocation_id()
        plan = self._plan(function)
        self._in_flight += 1
        self._idle.clear()
        started = time.perf_counter()
        outcome, error_text = "Succeeded", None
        try:
            retry = (retry_count, max_retry_count, retry_error)
            inputs = await self._read_inputs(plan, trigger_value) if plan.inputs else {}
            if extra_inputs:
                inputs = {**inputs, **extra_inputs}
            argument = trigger_value if trigger_argument is None else trigger_argument
            kwargs, outs = self._arguments(plan, argument, invocation_id, retry, inputs)
            result = await self._call(plan, kwargs)
            outputs = {name: out.get() for name, out in outs.items() if out.was_set}
            if plan.returns:
                outputs["$return"] = result
            if outputs:
                await self._deliver(plan, outputs)
            return Invocation(
                invocation_id, function.name, time.perf_counter() - started, outputs, result
            )
        except HostShuttingDown:
            raise
        except BaseException as error:
            outcome, error_text = "Failed", f"{type(error).__name__}: {error}"
            log.error(
                "function %s failed (invocation %s)",
                function.name,
                invocation_id,
                exc_info=error,
            )
            if isinstance(error, (KeyboardInterrupt, SystemExit)):
                raise
            raise FunctionFailed(function.name, invocation_id, error) from error
        finally:
            duration_ms = round((time.perf_counter() - started) * 1000, 3)
            if log.isEnabledFor(logging.INFO):
                record = {
                    "event": "invocation",
                    "function": function.name,
                    "trigger": function.trigger.type,
                    "invocation_id": invocation_id,
                    "duration_ms": duration_ms,
                    "outcome": outcome,
                    **(log_fields or {}),
                }
                if error_text is not None:
                    record["error"] = error_text
                # Made and handled as `log.info` would, through the record factory (the
                # platform's scrubber is one), but without walking the stack for a caller's
                # file and line: the source is always this line, and the format shows neither.
                log.handle(
                    log.makeRecord(log.name, logging.INFO, __file__, 0, _log_json(record), (), None)
                )
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    def _plan(self, function: FunctionSpec) -> _CallPlan:
        plan = self._plans.get(function.name)
        if plan is None or plan.function is not function:
            plan = self._plans[function.name] = _CallPlan.of(function)
        return plan

    def _arguments(
        self,
        plan: _CallPlan,
        trigger_value: Any,
        invocation_id: str,
        retry: tuple[int, int, BaseException | None],
        extra_inputs: Mapping[str, Any],
    ) -> tuple[dict[str, Any], dict[str, OutValue[Any]]]:
        function = plan.function
        kwargs: dict[str, Any] = {}
        outs: dict[str, OutValue[Any]] = {}
        for name, binding, takes_trigger in plan.parameters:
            if takes_trigger:
                kwargs[name] = trigger_value
            elif name in extra_inputs:
                kwargs[name] = extra_inputs[name]
            elif binding is not None and binding.direction == "out":
                outs[name] = OutValue()
                kwargs[name] = outs[name]
            elif binding is not None:
                provider = self._inputs.get(binding.type.lower())
                if provider is None:
                    raise NotImplementedError(
                        f"the devhost has no input binding of type {binding.type!r}"
                    )
                kwargs[name] = provider(binding, function)
            elif name == "context" or function.annotations.get(name) is func.Context:
                kwargs[name] = InvocationContext(invocation_id, function, _RetryContext(*retry))
        return kwargs, outs

    async def _read_inputs(self, plan: _CallPlan, trigger_value: Any) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for binding in plan.inputs:
            provider = self._bound_inputs.get(binding.type.lower())
            if provider is not None:
                values[binding.name] = await provider(binding, plan.function, trigger_value)
        return values

    async def _call(self, plan: _CallPlan, kwargs: dict[str, Any]) -> Any:
        user_function = plan.function.user_function
        if plan.is_async:
            return await user_function(**kwargs)
        call = functools.partial(contextvars.copy_context().run, user_function, **kwargs)
        return await self._threads.run(call)

    async def _deliver(self, plan: _CallPlan, outputs: Mapping[str, Any]) -> None:
        for name, value in outputs.items():
            binding = plan.outputs.get(name)
            if binding is None:
                continue
            sink = self._sinks.get(binding.type.lower())
            if sink is not None:
                await sink(binding, plan.function, value)

    async def run_blocking(self, call: Callable[[], T]) -> T:
        """Run host-side blocking work (file and SQLite I/O) on the functions' threads."""
        return await self._threads.run(call)

    def stop_accepting(self) -> None:
        self._accepting = False

    async def drain(self, timeout: float) -> bool:
        """Wait for in-flight invocations; True if all finished within the timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False

    def close(self, wait_s: float = 0.0) -> None:
        """Cancel the calls not started; wait up to `wait_s` for the running ones."""
        self._threads.close(wait_s)
