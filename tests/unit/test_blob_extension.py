"""The blob extension in process: set-up errors, options, concurrency, and stopping."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from devhost.appsettings import AppSettings
from devhost.blob.extension import BlobExtension, BlobOptions, BlobSettingError
from devhost.extension import HostContext
from devhost.hostconfig import HostConfig, HostConfigError
from devhost.indexing import FunctionSpec, IndexingError, index_app
from devhost.invocation import Invoker
from devhost.keys import HostKeys

pytestmark = pytest.mark.unit

MakeContext = Callable[..., HostContext]


@pytest.fixture
async def make_context(tmp_path: Path) -> AsyncIterator[MakeContext]:
    invokers: list[Invoker] = []

    def make(settings: dict[str, str] | None = None, blobs: Any = None) -> HostContext:
        invoker = Invoker(max_threads=8)
        invokers.append(invoker)
        extensions = {} if blobs is None else {"blobs": blobs}
        return HostContext(
            script_root=tmp_path,
            data_dir=tmp_path / "data",
            settings=AppSettings(settings or {}, environ={}),
            host_config=HostConfig(extensions=extensions),
            invoker=invoker,
            keys=HostKeys(master="master", host={"default": "host"}),
            base_url="http://127.0.0.1:7071",
            log=logging.getLogger("test"),
        )

    yield make
    for invoker in invokers:
        invoker.stop_accepting()
        await invoker.drain(5)
        invoker.close()


def blob_functions(path: str, body: Callable[[func.InputStream], None]) -> list[FunctionSpec]:
    app = func.FunctionApp()

    @app.blob_trigger(arg_name="blob", path=path, connection="AzureWebJobsStorage")
    def on_blob(blob: func.InputStream) -> None:
        body(blob)

    return index_app(app, AppSettings({}, environ={}))


def drop(data_dir: Path, blob: str, data: bytes = b"x") -> None:
    path = data_dir / "blobs" / blob
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    then = time.time() - 5  # settled: older than the quiet period
    os.utime(path, (then, then))


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("landing", "a blob path is 'container/blob-name'"),
        ("landing/{na me}", "parameter name 'na me' is invalid"),
        ("{c}/{name}", "cannot hold parameters"),
    ],
)
async def test_a_bad_pattern_fails_start_naming_function_and_binding(
    make_context: MakeContext, path: str, fragment: str
) -> None:
    functions = blob_functions(path, lambda blob: None)
    with pytest.raises(IndexingError) as raised:
        BlobExtension(make_context(), functions)
    message = str(raised.value)
    assert "function 'on_blob', binding 'blob' (blobTrigger)" in message
    assert fragment in message


async def test_start_creates_containers_and_describes_functions(
    make_context: MakeContext, tmp_path: Path
) -> None:
    extension = BlobExtension(make_context(), blob_functions("landing/{name}.csv", print))
    await extension.start()
    try:
        assert (tmp_path / "data" / "blobs" / "landing").is_dir()
        assert (tmp_path / "data" / "devhost" / "blob_receipts.sqlite3").exists()
        assert extension.describe() == [
            f"on_blob: blob landing/{{name}}.csv in {tmp_path / 'data' / 'blobs' / 'landing'}"
        ]
    finally:
        await extension.stop()


def test_options_default_to_azure_values() -> None:
    options = BlobOptions.load(AppSettings({}, environ={}), HostConfig())
    assert (options.poll_interval_s, options.max_attempts, options.concurrency) == (1.0, 5, 4)


@pytest.mark.parametrize(
    "blobs",
    [{"maxDequeueCount": 3}, {"poisonBlobThreshold": 3}, {"MaxDequeueCount": 3}],
)
def test_host_json_sets_the_attempt_limit(blobs: dict[str, int]) -> None:
    options = BlobOptions.load(AppSettings({}, environ={}), HostConfig(extensions={"blobs": blobs}))
    assert options.max_attempts == 3


@pytest.mark.parametrize("value", [0, -1, "5", 2.5, True])
def test_a_bad_host_json_value_is_refused(value: Any) -> None:
    config = HostConfig(extensions={"blobs": {"maxDequeueCount": value}})
    with pytest.raises(HostConfigError, match="extensions.blobs.maxDequeueCount"):
        BlobOptions.load(AppSettings({}, environ={}), config)


def test_the_poll_interval_comes_from_the_app_setting() -> None:
    settings = AppSettings({"DEVHOST_BLOB_POLL_INTERVAL_S": "0.25"}, environ={})
    assert BlobOptions.load(settings, HostConfig()).poll_interval_s == 0.25


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan"])
def test_a_bad_poll_interval_names_the_setting(value: str) -> None:
    settings = AppSettings({"DEVHOST_BLOB_POLL_INTERVAL_S": value}, environ={})
    with pytest.raises(BlobSettingError, match="DEVHOST_BLOB_POLL_INTERVAL_S"):
        BlobOptions.load(settings, HostConfig())


async def test_blobs_run_concurrently_up_to_the_limit_never_twice_at_once(
    make_context: MakeContext, tmp_path: Path
) -> None:
    lock = threading.Lock()
    running, peak, calls = [0], [0], Counter[str]()

    def slow(blob: func.InputStream) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            calls[str(blob.name)] += 1
        time.sleep(0.2)
        with lock:
            running[0] -= 1

    context = make_context(
        {"DEVHOST_BLOB_POLL_INTERVAL_S": "0.02"}, blobs={"maxDegreeOfParallelism": 2}
    )
    extension = BlobExtension(context, blob_functions("landing/{name}", slow))
    for index in range(5):
        drop(tmp_path / "data", f"landing/{index}.csv")
    await extension.start()
    try:
        await wait_until(lambda: sum(calls.values()) == 5 and running[0] == 0)
        await asyncio.sleep(0.2)  # more polls: nothing runs again
    finally:
        await extension.stop()
    assert peak[0] == 2
    assert calls == Counter({f"landing/{index}.csv": 1 for index in range(5)})


async def test_stop_stops_polling(make_context: MakeContext, tmp_path: Path) -> None:
    seen: list[str] = []
    context = make_context({"DEVHOST_BLOB_POLL_INTERVAL_S": "0.02"})
    extension = BlobExtension(
        context, blob_functions("landing/{name}", lambda b: seen.append(str(b.name)))
    )
    await extension.start()
    drop(tmp_path / "data", "landing/before.csv")
    await wait_until(lambda: seen == ["landing/before.csv"])
    await extension.stop()
    drop(tmp_path / "data", "landing/after.csv")
    await asyncio.sleep(0.2)
    assert seen == ["landing/before.csv"]


async def test_poll_once_reports_new_work_and_skips_settled_blobs(
    make_context: MakeContext, tmp_path: Path
) -> None:
    seen: list[str] = []
    context = make_context({"DEVHOST_BLOB_POLL_INTERVAL_S": "60"})
    extension = BlobExtension(
        context, blob_functions("landing/{name}.csv", lambda b: seen.append(str(b.name)))
    )
    drop(tmp_path / "data", "landing/a.csv")
    drop(tmp_path / "data", "landing/a.txt")  # does not match the pattern
    await extension.start()
    try:
        await wait_until(lambda: seen == ["landing/a.csv"])
        await asyncio.sleep(0.05)
        assert await extension.poll_once() == 0
        drop(tmp_path / "data", "landing/b.csv")
        assert await extension.poll_once() == 1
        await wait_until(lambda: seen == ["landing/a.csv", "landing/b.csv"])
    finally:
        await extension.stop()


async def test_a_blob_name_that_is_not_utf8_is_poisoned_once_with_a_reason(
    make_context: MakeContext, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "data" / "blobs" / "landing"
    folder.mkdir(parents=True)
    bad = os.path.join(os.fsencode(folder), b"caf\xe9.csv")  # Latin-1, as an old tool names it
    with open(bad, "wb") as file:
        file.write(b"x")
    then = time.time() - 5
    os.utime(bad, (then, then))
    drop(tmp_path / "data", "landing/good.csv")
    seen: list[str] = []
    for _ in range(2):  # a restart finds the poison recorded and says nothing more
        context = make_context({"DEVHOST_BLOB_POLL_INTERVAL_S": "0.02"})
        extension = BlobExtension(
            context, blob_functions("landing/{name}", lambda b: seen.append(str(b.name)))
        )
        with caplog.at_level(logging.WARNING):
            await extension.start()
            try:
                await wait_until(lambda: "landing/good.csv" in seen)
                await asyncio.sleep(0.2)  # many polls
                assert extension._receipts is not None
                poisoned = extension._receipts.poisoned()
            finally:
                await extension.stop()
    assert seen == ["landing/good.csv"]
    [record] = poisoned
    assert record.blob == os.fsdecode(b"landing/caf\xe9.csv") and record.attempts == 0
    assert "not valid UTF-8" in record.error and "caf\\xe9.csv" in record.error
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    warnings = [r for r in caplog.records if "poison blob" in r.getMessage()]
    assert len(warnings) == 1
