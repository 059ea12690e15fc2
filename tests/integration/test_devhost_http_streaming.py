"""HTTP streams through a real devhost: a function that takes the FastAPI Request of
azurefunctions-extensions-http-fastapi streams its response chunk by chunk and its request
body as it arrives, with back-pressure, and is cancelled when its caller leaves; the classic
functions of the same app are unaffected."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import StartDevhost
from tests.devhost_process import DevhostProcess
from tests.durable_http import wait_for

pytestmark = pytest.mark.integration

APP = "http_streaming"
MIB = 1024 * 1024
PROMPTLY_S = 3.0  # far longer than the host needs to notice a caller leaving (about 0.1 s)


@pytest.fixture
def events_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "stream-events"
    folder.mkdir()
    return folder


@pytest.fixture
def host(start_devhost: StartDevhost, events_dir: Path) -> DevhostProcess:
    return start_devhost(APP, env={"STREAM_EVENTS_DIR": str(events_dir)})


def events(events_dir: Path, tag: str, *wanted: str) -> list[str]:
    """The events a tagged generator recorded, once all of `wanted` are there."""
    deadline = time.monotonic() + PROMPTLY_S
    while True:
        path = events_dir / tag
        seen = [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else []
        if set(wanted) <= set(seen) or time.monotonic() > deadline:
            return seen
        time.sleep(0.02)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def timed_chunks(response: requests.Response) -> Iterator[tuple[float, bytes]]:
    started = time.monotonic()
    for chunk in response.iter_content(chunk_size=None):
        yield time.monotonic() - started, chunk


def test_events_arrive_one_by_one_and_byte_for_byte(host: DevhostProcess) -> None:
    with requests.get(host.url("/api/sse?n=5&delay=0.25"), stream=True, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        arrivals = list(timed_chunks(response))
    body = b"".join(chunk for _, chunk in arrivals)
    expected = "".join(
        f"id: {n}\nevent: tick\ndata: {json.dumps({'n': n, 'text': 'é'})}\n\n" for n in range(5)
    )
    assert body == expected.encode()
    first_event_at = arrivals[0][0]
    last_event_at = arrivals[-1][0]
    assert first_event_at < 0.5 < 0.9 < last_event_at  # as yielded, not the body at the end


def test_a_sync_function_streams_a_sync_generator(host: DevhostProcess) -> None:
    response = requests.get(host.url("/api/lines?n=3"), timeout=10)
    lines = response.text.splitlines()
    assert [line.split()[:2] for line in lines] == [["line", "0"], ["line", "1"], ["line", "2"]]
    assert all("AnyIO worker thread" in line for line in lines)  # as starlette runs it


def test_a_json_response_and_what_the_function_sees(host: DevhostProcess) -> None:
    response = requests.get(
        host.url("/api/things/abc?x=1&x=2"),
        headers={"x-forwarded-for": "6.6.6.6", "x-custom": "c", "host": "forged.example"},
        timeout=10,
    )
    assert response.status_code == 201
    assert response.headers["x-answer"] == "yes"
    seen = response.json()
    assert seen["name"] == "abc"
    assert seen["query"] == {"x": "2"}  # starlette's QueryParams: the last of a repeated name
    assert seen["url"] == host.url("/api/things/abc?x=1&x=2")  # never the forged Host
    assert seen["client"] == seen["forwarded_for"] == "127.0.0.1"
    assert seen["invocation_id"] == response.headers["x-ms-invocation-id"]
    assert seen["custom"] == "c"
    assert seen["thread"] == "MainThread"  # an async function runs on the loop
    plain = requests.get(host.url("/api/plain"), timeout=10)
    assert (plain.text, plain.headers["set-cookie"]) == ("plain text", "a=1")
    assert requests.get(host.url("/api/value"), timeout=10).json() == {"value": [1, 2, 3]}


def test_keys_are_required_as_for_other_functions(start_devhost: StartDevhost) -> None:
    host = start_devhost(APP, env={"DEVHOST_ENFORCE_AUTH": "true"})
    key = host.keys()["functionKeys"]["thing"]["default"]
    assert requests.get(host.url("/api/things/abc"), timeout=10).status_code == 401
    answer = requests.get(host.url("/api/things/abc"), params={"code": key}, timeout=10)
    assert answer.status_code == 201


def test_the_request_body_streams_in_within_the_size_limit(
    start_devhost: StartDevhost,
) -> None:
    host = start_devhost(APP, env={"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": str(5 * MIB)})

    def chunked(size: int) -> Iterator[bytes]:
        for _ in range(size // (256 * 1024)):
            yield b"u" * (256 * 1024)

    answer = requests.post(host.url("/api/upload"), data=chunked(4 * MIB), timeout=30)
    assert answer.json()["bytes"] == 4 * MIB
    assert answer.json()["chunks"] > 1  # it came in pieces, as sent
    assert (
        requests.post(host.url("/api/upload"), data=chunked(6 * MIB), timeout=30).status_code == 413
    )
    declared = requests.post(host.url("/api/upload"), data=b"u" * (5 * MIB + 1), timeout=30)
    assert declared.status_code == 413


def test_a_slow_reader_holds_the_generator_back(host: DevhostProcess, events_dir: Path) -> None:
    before = rss_bytes(host.process.pid)
    url = host.url("/api/big?tag=big&mb=200")
    with requests.get(url, stream=True, timeout=30) as response:
        chunks = response.iter_content(chunk_size=MIB)
        received = len(next(chunks))
        time.sleep(1.0)  # the reader stalls: the generator must wait for it
        produced = int(requests.get(host.url("/api/produced?tag=big"), timeout=10).text)
        assert produced < 40, f"{produced} MiB produced for 1 MiB read"
        peak = 0
        for chunk in chunks:
            received += len(chunk)
            if received % (20 * MIB) < len(chunk):
                peak = max(peak, rss_bytes(host.process.pid))
    assert received == 200 * MIB
    assert peak - before < 100 * MIB, "the host held the body in memory"
    assert "closed" in events(events_dir, "big", "closed")


@pytest.mark.parametrize(
    ("path", "wanted"),
    [
        ("/api/endless?upstream=1", ("cancelled", "closed")),  # waiting on an upstream call
        ("/api/endless", ("closed",)),  # between two events
        ("/api/endless-sync", ("closed",)),  # a sync generator on starlette's threads
    ],
)
def test_a_caller_that_leaves_stops_the_function(
    host: DevhostProcess, events_dir: Path, path: str, wanted: tuple[str, ...]
) -> None:
    tag = f"gone-{len(path)}"
    separator = "&" if "?" in path else "?"
    with requests.get(host.url(f"{path}{separator}tag={tag}"), stream=True, timeout=10) as response:
        assert next(response.iter_content(chunk_size=None))
        left_at = time.time()
    seen = events(events_dir, tag, *wanted)
    assert set(wanted) <= set(seen), seen
    closed_at = float((events_dir / tag).read_text().splitlines()[-1].split()[1])
    assert closed_at - left_at < PROMPTLY_S
    output = host.wait_for_output('"outcome": "Disconnected"')
    assert "the client closed the connection" in output


def test_failures_before_and_after_the_first_byte(host: DevhostProcess) -> None:
    early = requests.get(host.url("/api/fails-early"), timeout=10)
    assert early.status_code == 500
    assert early.json()["invocationId"] == early.headers["x-ms-invocation-id"]
    with requests.get(host.url("/api/fails-midway"), stream=True, timeout=10) as response:
        assert response.status_code == 200
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            response.content  # noqa: B018 (the read is the test: the body is cut short)
    output = host.wait_for_output("this stream fails after two events")
    assert '"outcome": "Failed"' in output
    assert requests.get(host.url("/api/classic/1"), timeout=10).status_code == 200


def test_classic_functions_of_the_same_app_are_unaffected(host: DevhostProcess) -> None:
    answer = requests.post(host.url("/api/classic/7"), data=b"hello", timeout=10)
    assert answer.json() == {"id": 7, "body": 5}
    assert answer.headers["content-type"].startswith("application/json")
    assert "classic, produced_so_far take func.HttpRequest" in host.output()  # Azure would not


def test_a_durable_client_input_beside_the_request(host: DevhostProcess) -> None:
    started = requests.post(host.url("/api/orchestrations/echo"), json={"x": 1}, timeout=10)
    assert started.status_code == 202
    assert wait_for(host, started.json()["id"])["output"] == {"x": 1}


def test_one_invocation_line_per_streaming_invocation(host: DevhostProcess) -> None:
    response = requests.get(host.url("/api/sse?n=2&delay=0"), timeout=10)
    invocation_id = response.headers["x-ms-invocation-id"]
    output = host.wait_for_output(invocation_id)
    lines = [line for line in output.splitlines() if invocation_id in line]
    assert len(lines) == 1
    record = json.loads(lines[0][lines[0].index("{") :])
    assert (record["function"], record["outcome"]) == ("sse", "Succeeded")


def test_stopping_the_host_ends_an_open_stream_promptly(
    host: DevhostProcess, events_dir: Path
) -> None:
    response = requests.get(host.url("/api/endless?tag=stop"), stream=True, timeout=10)
    assert next(response.iter_content(chunk_size=None))
    started = time.monotonic()
    assert host.stop() == 0
    assert time.monotonic() - started < 10
    response.close()
    assert "closed" in events(events_dir, "stop", "closed")
