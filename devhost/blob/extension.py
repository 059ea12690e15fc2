"""The blob trigger listener: poll the store's containers, invoke once per blob version."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from devhost.appsettings import AppSettings
from devhost.blob.output import BlobOutputSink, trigger_binding_data
from devhost.blob.patterns import BlobPattern, BlobPatternError
from devhost.blob.receipts import DEFAULT_MAX_ATTEMPTS, BlobReceipts, Receipt, ReceiptStatus
from devhost.blob.store import BlobFile, BlobStore, name_problem, printable
from devhost.blob.stream import (
    BlobChangedError,
    BlobDecodeError,
    BlobStream,
    local_uri,
    open_blob,
    read_content,
    wants_content,
)
from devhost.errors import StartupError
from devhost.extension import HostContext
from devhost.hostconfig import HostConfig, HostConfigError
from devhost.indexing import FunctionSpec, IndexingError
from devhost.invocation import FunctionFailed, HostShuttingDown

log = logging.getLogger("devhost.blob")

POLL_INTERVAL_SETTING = "DEVHOST_BLOB_POLL_INTERVAL_S"
DEFAULT_POLL_INTERVAL_S = 1.0
DEFAULT_CONCURRENCY = 4
RETRY_BACKOFF_S = 0.1  # doubles per failed attempt
MAX_RETRY_BACKOFF_S = 2.0
RECEIPTS_FILE = "blob_receipts.sqlite3"


class BlobSettingError(StartupError, ValueError):
    """An app setting of the blob trigger holds an unusable value."""


@dataclass(frozen=True)
class BlobTrigger:
    """A blobTrigger function, its pattern, and whether it takes a stream or the content."""

    function: FunctionSpec
    pattern: BlobPattern
    content: type[bytes] | type[str] | None

    @classmethod
    def of(cls, function: FunctionSpec) -> BlobTrigger:
        binding = function.trigger
        path = binding.get("path")
        try:
            if not isinstance(path, str):
                raise BlobPatternError("the binding has no 'path' (e.g. 'landing/{name}.csv')")
            pattern = BlobPattern.parse(path)
        except BlobPatternError as error:
            raise IndexingError(
                f"function {function.name!r}, binding {binding.name!r} ({binding.type}): {error}"
            ) from error
        return cls(function, pattern, wants_content(function.annotations.get(binding.name)))


@dataclass(frozen=True)
class BlobOptions:
    """host.json `extensions.blobs` and the devhost's own settings for blob triggers."""

    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    concurrency: int = DEFAULT_CONCURRENCY

    @classmethod
    def load(cls, settings: AppSettings, host_config: HostConfig) -> BlobOptions:
        section = host_config.extension("blobs")
        return cls(
            poll_interval_s=_poll_interval(settings),
            # maxDequeueCount as the queue-based receipts had it; poisonBlobThreshold is
            # the Storage extension 5.x name for the same limit.
            max_attempts=_host_int(
                section, ("maxDequeueCount", "poisonBlobThreshold"), DEFAULT_MAX_ATTEMPTS
            ),
            concurrency=_host_int(section, ("maxDegreeOfParallelism",), DEFAULT_CONCURRENCY),
        )


def _poll_interval(settings: AppSettings) -> float:
    text = settings.get(POLL_INTERVAL_SETTING)
    if text is None or not text.strip():
        return DEFAULT_POLL_INTERVAL_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise BlobSettingError(
            f"app setting {POLL_INTERVAL_SETTING} must be a positive number of seconds,"
            f" got {text!r}"
        )
    return value


def _host_int(section: Mapping[str, Any], names: tuple[str, ...], default: int) -> int:
    lowered = {str(key).lower(): (key, value) for key, value in section.items()}
    for name in names:
        if name.lower() not in lowered:
            continue
        key, value = lowered[name.lower()]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise HostConfigError(
                f"host.json: extensions.blobs.{key} must be a positive integer, got {value!r}"
            )
        return value
    return default


def _backoff_s(attempts: int) -> float:
    return float(min(RETRY_BACKOFF_S * 2 ** max(attempts - 1, 0), MAX_RETRY_BACKOFF_S))


class BlobExtension:
    """Runs blobTrigger functions on `data_dir/blobs/<container>/<path>` files.

    Each poll lists the watched containers on the invoker's blocking pool. A blob version
    (size and mtime) not yet settled for a function is invoked, retried with backoff, and
    poisoned after `max_attempts`. Different blobs run concurrently up to `concurrency`; one
    blob never runs twice at once for the same function.
    """

    trigger_types = frozenset({"blobtrigger"})

    def __init__(self, context: HostContext, functions: list[FunctionSpec]) -> None:
        self._context = context
        self._invoker = context.invoker
        self._store = BlobStore(context.data_dir / "blobs")
        self._triggers = [BlobTrigger.of(function) for function in functions]
        self._by_container: dict[str, list[BlobTrigger]] = defaultdict(list)
        for trigger in self._triggers:
            self._by_container[trigger.pattern.container].append(trigger)
        self.options = BlobOptions.load(context.settings, context.host_config)
        self._receipts: BlobReceipts | None = None
        self._settled: set[tuple[str, str, str]] = set()
        self._active: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(self.options.concurrency)
        self._stopping = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        # Any function may write blobs (an HTTP trigger too), so the sink is always there.
        self._invoker.register_output("blob", BlobOutputSink(self._store, self._invoker))

    @property
    def receipts_path(self) -> Path:
        return self._context.data_dir / "devhost" / RECEIPTS_FILE

    def routes(self) -> list[web.RouteDef]:
        return []

    def describe(self) -> list[str]:
        return [
            f"{t.function.name}: blob {t.pattern.text} in "
            f"{self._store.container_dir(t.pattern.container)}"
            for t in self._triggers
        ]

    async def start(self) -> None:
        if not self._triggers:
            return
        self._receipts = await self._invoker.run_blocking(self._prepare)
        self._settled = await self._invoker.run_blocking(self._receipts.settled)
        self._poller = asyncio.create_task(self._poll_forever(), name="devhost-blob-poller")

    def _prepare(self) -> BlobReceipts:
        # Created up front so users see where to drop files.
        for container in self._by_container:
            self._store.container_dir(container).mkdir(parents=True, exist_ok=True)
        return BlobReceipts(self.receipts_path, max_attempts=self.options.max_attempts)

    async def stop(self) -> None:
        """Stop polling and retrying; attempts in flight finish while the host drains."""
        self._stopping.set()
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        if self._receipts is not None and self._closer is None:
            self._closer = asyncio.create_task(self._close_when_idle(self._receipts))

    async def _close_when_idle(self, receipts: BlobReceipts) -> None:
        # Attempts in flight still record their outcome while the host drains them.
        try:
            if self._tasks:
                await asyncio.wait(set(self._tasks))
        finally:
            receipts.close()

    async def _poll_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.poll_once()
            except Exception:
                log.exception("scanning the blob store failed; trying again next poll")
            await self._sleep(self.options.poll_interval_s)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass

    async def poll_once(self) -> int:
        """Scan once and start work on every unsettled blob version; returns how many."""
        found = await self._invoker.run_blocking(self._scan)
        started = 0
        for trigger, blob, binding_data in found:
            name = trigger.function.name
            key = (name, blob.blob_path)
            if (name, blob.blob_path, blob.etag) in self._settled or key in self._active:
                continue
            if self._stopping.is_set():
                break
            self._active.add(key)
            task = asyncio.create_task(self._process(trigger, blob, binding_data))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started += 1
        return started

    def _scan(self) -> list[tuple[BlobTrigger, BlobFile, dict[str, str]]]:
        found: list[tuple[BlobTrigger, BlobFile, dict[str, str]]] = []
        for container, triggers in self._by_container.items():
            for blob in self._store.scan(container):
                for trigger in triggers:
                    binding_data = trigger.pattern.match_name(blob.name)
                    if binding_data is not None:
                        found.append((trigger, blob, binding_data))
        return found

    async def _process(
        self, trigger: BlobTrigger, blob: BlobFile, binding_data: dict[str, str]
    ) -> None:
        try:
            while not self._stopping.is_set():
                async with self._slots:
                    if self._stopping.is_set():
                        return
                    failed_attempts = await self._attempt(trigger, blob, binding_data)
                if failed_attempts is None:
                    return
                await self._sleep(_backoff_s(failed_attempts))
        except Exception:
            log.exception(
                "processing blob %s for function %s failed; it will be retried on a later poll",
                blob.blob_path,
                trigger.function.name,
            )
        finally:
            self._active.discard((trigger.function.name, blob.blob_path))

    async def _attempt(
        self, trigger: BlobTrigger, blob: BlobFile, binding_data: dict[str, str]
    ) -> int | None:
        """Make one attempt. Returns the attempt count if it failed and may be retried."""
        receipts = self._receipts
        assert receipts is not None
        run = self._invoker.run_blocking
        function = trigger.function
        keys = (function.name, blob.blob_path, blob.etag)
        if not self._invoker.accepting:
            return None
        problem = name_problem(blob.blob_path)
        if problem is not None:  # no retry can fix it: poison it now, once
            self._settle(await run(lambda: receipts.poison_now(*keys, problem)))
            return None
        receipt = await run(lambda: receipts.begin(*keys))
        if receipt.status is not ReceiptStatus.PENDING:
            self._settle(receipt)
            return None
        try:
            value, stream = await run(lambda: self._open(trigger, blob))
        except BlobChangedError as error:
            log.debug("%s; leaving it for the next poll", error)
            await run(lambda: receipts.undo_begin(*keys))
            return None
        except BlobDecodeError as error:
            reason = str(error)
            self._settle(await run(lambda: receipts.poison_now(*keys, reason)))
            return None
        except OSError as error:
            reason = f"cannot read the blob: {error}"
            return self._after_failure(await run(lambda: receipts.fail(*keys, reason)))
        token = trigger_binding_data.set(binding_data)
        try:
            await self._invoker.invoke(
                function,
                value,
                retry_count=receipt.attempts - 1,
                log_fields={"blob": blob.blob_path, "etag": blob.etag, "attempt": receipt.attempts},
            )
        except FunctionFailed as failure:
            if isinstance(failure.error, asyncio.CancelledError):
                # The host gave up waiting at shutdown: the attempt stays counted, as
                # after a crash, and the blob is retried after the restart.
                raise failure.error from None
            error_text = f"{type(failure.error).__name__}: {failure.error}"
            return self._after_failure(await run(lambda: receipts.fail(*keys, error_text)))
        except HostShuttingDown:
            await run(lambda: receipts.undo_begin(*keys))
            return None
        finally:
            trigger_binding_data.reset(token)
            stream.close()
        await run(lambda: receipts.complete(*keys))
        self._settled.add(keys)
        return None

    def _open(self, trigger: BlobTrigger, blob: BlobFile) -> tuple[Any, BlobStream]:
        stream = open_blob(blob, local_uri(blob.path))
        if trigger.content is None:
            return stream, stream
        try:
            return read_content(stream, trigger.content), stream
        except BaseException:
            stream.close()
            raise

    def _after_failure(self, receipt: Receipt) -> int | None:
        if receipt.status is ReceiptStatus.POISON:
            self._settle(receipt)
            return None
        return receipt.attempts

    def _settle(self, receipt: Receipt) -> None:
        self._settled.add(receipt.key)
        if receipt.just_poisoned:
            log.warning(
                "poison blob: %s (%s) for function %s after %d attempt(s): %s; recorded in %s"
                " (table poison; Azure would queue it on webjobs-blobtrigger-poison)",
                printable(receipt.blob),
                receipt.etag,
                receipt.function,
                receipt.attempts,
                receipt.last_error,
                self.receipts_path,
            )
