"""The devhost: index an app, start one listener per trigger type, serve, shut down gracefully."""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import os
import signal
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from devhost import __version__
from devhost.appsettings import AppSettings, load_local_settings
from devhost.console_log import ConsoleFormatter
from devhost.errors import StartupError
from devhost.extension import Extension, HostContext, webhook_guard
from devhost.host_lock import HostLock
from devhost.hostconfig import load_host_config
from devhost.http.limits import PARSER_FIELD_LIMIT, HttpLimits, refuse_large_headers
from devhost.identity.routes import IssuerRoutes, open_issuer
from devhost.indexing import FunctionSpec, index_app, load_app
from devhost.invocation import Invoker
from devhost.keys import (
    DURABLE_SYSTEM_KEY,
    enforces_auth,
    load_or_create_keys,
    presented_key,
)
from devhost.registry import EXTENSIONS

log = logging.getLogger("devhost")

DATA_DIR_SETTINGS = ("DEVHOST_DATA_DIR", "PLATFORM_DATA_DIR")
SHUTDOWN_TIMEOUT_SETTING = "DEVHOST_SHUTDOWN_TIMEOUT_S"
THREADS_SETTING = "PYTHON_THREADPOOL_THREAD_COUNT"
SHUTDOWN_IO_WAIT_S = 10.0
GC_YOUNG_THRESHOLD = 10_000
HOSTNAME_SETTING = "WEBSITE_HOSTNAME"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})


@dataclass(frozen=True)
class HostOptions:
    script_root: Path
    port: int = 7071
    host: str = "127.0.0.1"
    data_dir: Path | None = None
    shutdown_timeout_s: float | None = None


def is_disabled(function_name: str, settings: AppSettings) -> bool:
    """`AzureWebJobs.<name>.Disabled` (or `AzureWebJobs__<name>__Disabled`) set to true or 1."""
    for name in (
        f"AzureWebJobs.{function_name}.Disabled",
        f"AzureWebJobs__{function_name}__Disabled",
    ):
        if settings.get(name, "").strip().lower() in ("true", "1"):
            return True
    return False


def public_base_url(settings: AppSettings, listen_url: str) -> str:
    """The address links are built from: `https://{WEBSITE_HOSTNAME}` as in Azure (plain http for
    a loopback name, as Core Tools serves `localhost:7071`), else the listening address. Never
    a request's Host header, which the caller chooses."""
    hostname = settings.get(HOSTNAME_SETTING, "").strip().rstrip("/")
    if not hostname:
        return listen_url
    name = hostname.rsplit(":", 1)[0] if not hostname.endswith("]") else hostname
    scheme = "http" if name.lower() in LOOPBACK_NAMES else "https"
    return f"{scheme}://{hostname}"


def data_dir_environment(options: HostOptions, data_dir: Path) -> dict[str, str]:
    """What to export for the app: with `--data-dir`, the dir replaces every data dir setting
    (the app's state, its lake included, moves with it, whatever local.settings.json says);
    otherwise the devhost's own dir is exported unless the environment sets one."""
    if options.data_dir is not None:
        return {name: str(data_dir) for name in DATA_DIR_SETTINGS}
    return {DATA_DIR_SETTINGS[0]: os.environ.get(DATA_DIR_SETTINGS[0]) or str(data_dir)}


def resolve_data_dir(options: HostOptions, settings: AppSettings) -> Path:
    if options.data_dir is not None:
        return options.data_dir.resolve()
    for name in DATA_DIR_SETTINGS:
        value = settings.get(name)
        if value:
            path = Path(value)
            return (path if path.is_absolute() else options.script_root / path).resolve()
    return (options.script_root / ".data").resolve()


# The data dir holds raw events (the hub's log) and the app's state: owner only. The umask
# makes every file and folder that the host and the app then create 600 and 700.
PRIVATE_UMASK = 0o077
PRIVATE_DIR_MODE = 0o700


def make_private(data_dir: Path) -> None:
    """Create the data dir (700) and make what the process creates from now on owner only;
    an existing data dir is closed to others (700), so that older files in it are too."""
    os.umask(PRIVATE_UMASK)
    data_dir.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    if data_dir.stat().st_mode & 0o777 != PRIVATE_DIR_MODE:
        try:
            data_dir.chmod(PRIVATE_DIR_MODE)
        except PermissionError:
            log.warning("the data dir %s is not yours: others may read it", data_dir)


class Host:
    def __init__(self, options: HostOptions) -> None:
        self.options = options
        self.started_at = time.time()
        self.extensions: list[Extension] = []
        self.functions: list[FunctionSpec] = []
        self.unserved: list[FunctionSpec] = []
        self.disabled: list[FunctionSpec] = []
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self._started = False
        self.context: HostContext | None = None
        self._lock: HostLock | None = None
        self._enforce_auth = False
        self.issuer_routes: IssuerRoutes | None = None

    async def start(self) -> None:
        script_root = self.options.script_root.resolve()
        settings = AppSettings(load_local_settings(script_root))
        settings.export_to_environment()
        host_config = load_host_config(script_root)
        data_dir = resolve_data_dir(self.options, settings)
        make_private(data_dir)
        self._lock = HostLock(data_dir, script_root)
        self._lock.acquire()  # before the app opens anything in the data dir
        os.environ.update(data_dir_environment(self.options, data_dir))
        # Before the app loads: its JWKS file is there for whatever the app reads at import.
        issuer = open_issuer(data_dir)
        app = load_app(script_root)
        self.functions = index_app(app, settings)
        threads = settings.get(THREADS_SETTING)
        invoker = Invoker(max_threads=int(threads) if threads else None)
        keys = load_or_create_keys(
            data_dir / "devhost" / "keys.json", [f.name for f in self.functions]
        )
        listen_url = f"http://{self.options.host}:{self.options.port}"
        self._enforce_auth = enforces_auth(settings)
        self.context = HostContext(
            script_root=script_root,
            data_dir=data_dir,
            settings=settings,
            host_config=host_config,
            invoker=invoker,
            keys=keys,
            base_url=public_base_url(settings, listen_url),
            log=log,
            listen_url=listen_url,
            webhook_guard=webhook_guard(app),
        )
        self.issuer_routes = issuer_routes = IssuerRoutes(issuer, self.context.base_url)
        self.disabled = [f for f in self.functions if is_disabled(f.name, settings)]
        by_type: dict[str, list[FunctionSpec]] = defaultdict(list)
        for function in self.functions:
            if function not in self.disabled:
                by_type[function.trigger.type.lower()].append(function)
        served: set[str] = set()
        for factory in EXTENSIONS:
            mine = [f for t in factory.trigger_types for f in by_type.get(t, [])]
            served |= factory.trigger_types
            self.extensions.append(factory(self.context, mine))
        self.unserved = [
            f
            for f in self.functions
            if f.trigger.type.lower() not in served and f not in self.disabled
        ]

        limits = HttpLimits.from_settings(settings)
        web_app = web.Application(
            client_max_size=limits.body_size, middlewares=[refuse_large_headers]
        )
        web_app.router.add_get("/admin/host/status", self._status)
        web_app.router.add_get("/", self._root)
        # Ahead of the extensions' routes: with an empty routePrefix, HTTP functions take /*.
        web_app.add_routes(issuer_routes.routes())
        for extension in self.extensions:
            web_app.add_routes(extension.routes())
        self._runner = web.AppRunner(
            web_app,
            access_log=None,
            handle_signals=False,
            # Bodies reach functions as sent; a connection that has not sent a whole request
            # line and headers this long after it opened or after its last response closes.
            auto_decompress=False,
            keepalive_timeout=limits.headers_timeout_s,
            max_field_size=PARSER_FIELD_LIMIT,
            max_line_size=PARSER_FIELD_LIMIT,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.options.host, self.options.port, reuse_address=True)
        try:
            await site.start()
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            raise StartupError(
                f"port {self.options.port} on {self.options.host} is in use (another devhost or "
                "program): pick another with --port N (make run PORT=N)"
            ) from error
        for extension in self.extensions:
            await extension.start()
        settle_collector()
        self._started = True
        self._print_banner()

    def _print_banner(self) -> None:
        assert self.context is not None
        root = self.context.script_root
        lines = [f"devhost {__version__}: {len(self.functions)} functions from {root}"]
        for extension in self.extensions:
            lines.extend(f"  {line}" for line in extension.describe())
        for function in self.disabled:
            lines.append(f"  {function.name}: disabled by AzureWebJobs.{function.name}.Disabled")
        for function in self.unserved:
            lines.append(
                f"  {function.name}: {function.trigger.type} is not supported by the devhost; "
                "it will not run"
            )
        http_enforced = any(getattr(e, "enforce_auth", False) for e in self.extensions)
        if http_enforced:
            keys = self.context.keys
            lines.append(f"  master key: {keys.master}")
            lines.append(f"  host key (default): {keys.host['default']}")
            lines.append(f"  system key ({DURABLE_SYSTEM_KEY}): {keys.system[DURABLE_SYSTEM_KEY]}")
            for name, function_keys in sorted(keys.functions.items()):
                lines.append(f"  function key ({name}): {function_keys['default']}")
        if self.issuer_routes is not None:
            lines.extend(f"  {line}" for line in self.issuer_routes.describe())
        lines.append(f"  data dir: {self.context.data_dir}")
        lines.append(f"devhost listening on {self.context.listen_url}")
        print("\n".join(lines), flush=True)

    async def _status(self, request: web.Request) -> web.Response:
        """`/admin/host/status`: as the admin API in Azure, it takes the master key."""
        assert self.context is not None
        presented = presented_key(request.headers, request.query)
        if self._enforce_auth and not self.context.keys.is_master(presented):
            return web.json_response(
                status=401,
                data={"error": "the admin API needs the master key (x-functions-key or code)"},
            )
        if self._stopping.is_set():
            state = "Stopping"
        else:
            state = "Running" if self._started else "Starting"
        return web.json_response(
            status=200 if state == "Running" else 503,
            data={
                "state": state,
                "version": __version__,
                "functions": [f.name for f in self.functions],
                "uptime_s": round(time.time() - self.started_at, 3),
            },
        )

    async def _root(self, request: web.Request) -> web.Response:
        """`/`: the app's functions with their URLs (as the banner lists them, without keys),
        and a link to the app's OpenAPI description when it serves one."""
        lines = [f"devhost {__version__}: {len(self.functions)} functions"]
        description = None
        for extension in self.extensions:
            lines.extend(f"  {line}" for line in extension.describe())
            find = getattr(extension, "description_url", None)
            description = description or (find() if find is not None else None)
        if description is not None:
            lines.append(f"API description (OpenAPI): {description}")
        return web.Response(text="\n".join(lines) + "\n")

    def request_stop(self) -> None:
        self._stopping.set()

    async def wait_for_stop(self) -> None:
        await self._stopping.wait()

    async def stop(self) -> None:
        """Stop taking work, let in-flight invocations finish up to the timeout, then close."""
        self._stopping.set()
        assert self.context is not None
        invoker = self.context.invoker
        for extension in self.extensions:
            await extension.stop()
        timeout = self.options.shutdown_timeout_s
        if timeout is None:
            timeout = float(self.context.settings.get(SHUTDOWN_TIMEOUT_SETTING, "30"))
        if invoker.in_flight:
            log.info("waiting up to %.0f s for %d invocations", timeout, invoker.in_flight)
        invoker.stop_accepting()
        finished = await invoker.drain(timeout)
        if self._runner is not None:
            await self._runner.cleanup()
        # Host-side blocking work still running (a blob scan, a receipt) gets to finish, as
        # it did when the threads were an executor's, joined at exit.
        invoker.close(wait_s=SHUTDOWN_IO_WAIT_S if finished else 0.0)
        if not finished:
            # A sync function still running in a worker thread would block interpreter exit.
            log.warning("%d invocations still running at shutdown; exiting", invoker.in_flight)
            print("devhost stopped with invocations still running", flush=True)
            logging.shutdown()
            os._exit(1)
        if self._lock is not None:
            self._lock.release()
        print("devhost stopped", flush=True)


def settle_collector(young_threshold: int = GC_YOUNG_THRESHOLD) -> None:
    """Tune the cyclic garbage collector for serving, once start-up is done.

    The app, its SDKs and the host leave a large heap of objects that live as long as the
    process: freezing them keeps every full collection from scanning them again. A batch of
    1,000 events allocates tens of thousands of container objects, so the default young
    threshold (700) ran several collections per batch. Measured with `python -m benchmarks
    ingest`: both together cut the devhost's CPU per event by about 10%.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)


async def serve(options: HostOptions) -> None:
    host = Host(options)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, host.request_stop)
    await host.start()
    await host.wait_for_stop()
    await host.stop()


def configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("DEVHOST_LOG_LEVEL", "INFO").upper())
