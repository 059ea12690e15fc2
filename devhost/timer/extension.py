"""The timer trigger listener: runs timerTrigger functions on their schedules, as the host does."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from aiohttp import web
from azure.functions.timer import TimerRequest

from devhost.extension import HostContext
from devhost.indexing import FunctionSpec, IndexingError
from devhost.invocation import FunctionFailed, HostShuttingDown
from devhost.retry import Attempt, run_with_retries
from devhost.timer.ncrontab import ScheduleError
from devhost.timer.schedule import (
    TIME_ZONE_SETTING,
    Schedule,
    TimeZoneError,
    is_frequent,
    parse_schedule,
    resolve_time_zone,
)
from devhost.timer.status import ScheduleStatus, StatusFileError, StatusStore, reconcile

PAST_DUE = "IsPastDue"
RUN_ON_STARTUP = "RunOnStartup"
# Sleeps are cut into slices so a wall clock that jumps (NTP, a laptop waking up) is noticed.
MAX_SLEEP_S = 60.0

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Timer:
    """One timer function, its schedule and where it stands."""

    function: FunctionSpec
    schedule: Schedule
    run_on_startup: bool
    use_monitor: bool
    status: ScheduleStatus | None = None
    monitored: bool = False
    startup_reason: str | None = None
    running: bool = False
    task: asyncio.Task[None] | None = None


class TimerExtension:
    """Schedules timerTrigger functions; one asyncio task per timer, so runs never overlap."""

    trigger_types = frozenset({"timertrigger"})

    def __init__(
        self, context: HostContext, functions: list[FunctionSpec], *, clock: Clock = utc_now
    ) -> None:
        self._context = context
        self._clock = clock
        self._zone = self._time_zone(functions)
        self._timers = [self._configure(function) for function in functions]
        self._store = StatusStore(context.data_dir / "timers", self._zone)
        self._stopping = asyncio.Event()

    @property
    def timers(self) -> list[Timer]:
        return list(self._timers)

    def _time_zone(self, functions: list[FunctionSpec]) -> tzinfo:
        try:
            return resolve_time_zone(self._context.settings.get(TIME_ZONE_SETTING))
        except TimeZoneError as error:
            if not functions:
                return UTC
            names = ", ".join(repr(f.name) for f in functions)
            raise IndexingError(f"timer functions {names}: {error}") from error

    def _configure(self, function: FunctionSpec) -> Timer:
        trigger = function.trigger
        where = f"function {function.name!r}, binding {trigger.name!r} ({trigger.type})"
        expression = trigger.get("schedule")
        if not isinstance(expression, str) or not expression.strip():
            raise IndexingError(f"{where}: a timer trigger needs a schedule")
        try:
            schedule = parse_schedule(expression, self._zone)
        except ScheduleError as error:
            raise IndexingError(f"{where}: invalid schedule {expression!r}: {error}") from error
        return Timer(
            function=function,
            schedule=schedule,
            run_on_startup=_flag(where, "runOnStartup", trigger.get("runOnStartup"), False),
            use_monitor=_flag(where, "useMonitor", trigger.get("useMonitor"), True),
        )

    def routes(self) -> list[web.RouteDef]:
        return []

    def describe(self) -> list[str]:
        lines = []
        for timer in self._timers:
            status = timer.status
            upcoming = status.next if status else None
            if upcoming is None or timer.startup_reason == PAST_DUE:
                upcoming = timer.schedule.next_after(self._clock())
            text = f'{timer.function.name}: timer "{timer.schedule.expression}"'
            text += f", next {_utc(upcoming)}"
            if timer.startup_reason == PAST_DUE and status is not None:
                text += f", past due since {_utc(status.next)}: running now"
            elif timer.startup_reason == RUN_ON_STARTUP:
                text += ", runOnStartup: running now"
            if self._zone is not UTC:
                text += f" ({TIME_ZONE_SETTING}={self._zone})"
            if timer.function.retry is not None:
                text += f", {timer.function.retry.describe()}"
            lines.append(text)
        return lines

    async def start(self) -> None:
        now = self._clock()
        for timer in self._timers:
            self._prepare(timer, now)
            name = f"timer:{timer.function.name}"
            timer.task = asyncio.create_task(self._run(timer), name=name)

    async def stop(self) -> None:
        """Stop scheduling: sleeping timers wake and end; a run in progress is left to finish."""
        self._stopping.set()
        idle = [t.task for t in self._timers if t.task is not None and not t.running]
        if idle:
            await asyncio.wait(idle)

    def _prepare(self, timer: Timer, now: datetime) -> None:
        # As in Azure, timers that fire more than once a minute keep no status.
        timer.monitored = timer.use_monitor and not is_frequent(timer.schedule, now)
        if not timer.monitored:
            timer.status = ScheduleStatus(None, timer.schedule.next_after(now), None)
            timer.startup_reason = RUN_ON_STARTUP if timer.run_on_startup else None
            return
        name = timer.function.name
        try:
            stored = self._store.load(name)
        except StatusFileError as error:
            self._context.log.warning("timer %s: ignoring its status file: %s", name, error)
            stored = None
        reconciled = reconcile(stored, timer.schedule, now)
        timer.status = reconciled.status
        if reconciled.changed:
            self._save(timer)
        if reconciled.past_due:
            self._context.log.info(
                "timer %s is past due (it was due at %s); running it now",
                name,
                _utc(reconciled.status.next),
            )
            timer.startup_reason = PAST_DUE
        elif timer.run_on_startup:
            timer.startup_reason = RUN_ON_STARTUP

    async def _run(self, timer: Timer) -> None:
        try:
            if timer.startup_reason is not None:
                await self._fire(timer, timer.startup_reason)
            while not self._stopping.is_set():
                assert timer.status is not None
                due = timer.status.next
                if due is None:
                    self._context.log.warning(
                        "timer %s: schedule %r has no future occurrence; it will not run",
                        timer.function.name,
                        timer.schedule.expression,
                    )
                    return
                if not await self._sleep_until(due):
                    return
                await self._fire(timer, None)
        except HostShuttingDown:
            return
        except Exception:
            # A fault of the devhost itself (not of the function): say so rather than let the
            # timer fall silent.
            self._context.log.exception(
                "timer %s stopped on an internal error", timer.function.name
            )

    async def _sleep_until(self, due: datetime) -> bool:
        """Sleep until `due`; False if the extension was stopped first."""
        while not self._stopping.is_set():
            remaining = (due - self._clock()).total_seconds()
            if remaining <= 0:
                return True
            try:
                await asyncio.wait_for(self._stopping.wait(), min(remaining, MAX_SLEEP_S))
            except TimeoutError:
                continue
        return False

    async def _fire(self, timer: Timer, reason: str | None) -> None:
        if self._stopping.is_set():
            return
        assert timer.status is not None
        started = self._clock()
        request = TimerRequest(
            past_due=reason == PAST_DUE,
            # The host hands the worker no status for an unmonitored timer.
            schedule_status=timer.status.to_json(self._zone) if timer.monitored else None,
            schedule={"AdjustForDST": timer.schedule.adjust_for_dst},
        )
        fields: dict[str, Any] = {"schedule": timer.schedule.expression}
        if reason is not None:
            fields["reason"] = reason
        timer.running = True
        try:
            # Retries (`@app.retry`) run the same request again; as in Azure, the schedule
            # goes on whatever the outcome, and a stopping host ends the retries.
            await run_with_retries(
                timer.function.retry,
                functools.partial(self._attempt, timer.function, request, fields),
                function=timer.function.name,
                stopping=self._stopping,
                log_fields={"schedule": timer.schedule.expression},
            )
        finally:
            timer.running = False
        # A timer woken a little early must not compute the same Next again.
        ran_at = started
        if reason is None and timer.status.next is not None and timer.status.next > started:
            ran_at = timer.status.next
        timer.status = ScheduleStatus(ran_at, timer.schedule.next_after(ran_at), ran_at)
        if timer.monitored:
            self._save(timer)

    async def _attempt(
        self, function: FunctionSpec, request: TimerRequest, fields: dict[str, Any], state: Attempt
    ) -> BaseException | None:
        retry = {"retry_count": state.retry_count} if state.retry_count else {}
        try:
            await self._context.invoker.invoke(
                function,
                request,
                retry_count=state.retry_count,
                max_retry_count=state.max_retry_count,
                retry_error=state.error,
                log_fields={**fields, **retry},
            )
        except FunctionFailed as failure:
            return failure.error  # the Invoker has logged it
        return None

    def _save(self, timer: Timer) -> None:
        # Written synchronously: the file is tiny, and after the last invocation the host may
        # close before a write handed to the thread pool would run.
        assert timer.status is not None
        try:
            self._store.save(timer.function.name, timer.status)
        except OSError as error:
            self._context.log.error(
                "timer %s: cannot save its status to %s: %s",
                timer.function.name,
                self._store.path(timer.function.name),
                error,
            )


def _flag(where: str, key: str, value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise IndexingError(f"{where}: {key} must be true or false, not {value!r}")


def _utc(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
