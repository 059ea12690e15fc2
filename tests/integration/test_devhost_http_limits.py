"""The devhost reads requests within limits: body size, stalled headers and bodies, and bodies
passed on as sent (a compressed body is not inflated by the host)."""

from __future__ import annotations

import gzip
import hashlib
import socket

import pytest
import requests

from tests.conftest import StartDevhost
from tests.devhost_process import DevhostProcess

pytestmark = pytest.mark.integration

TIMEOUTS = {"DEVHOST_HTTP_HEADERS_TIMEOUT_S": "0.5", "DEVHOST_HTTP_BODY_TIMEOUT_S": "0.5"}
# How long the test waits for the host to act on a 0.5 s timeout; far longer than needed.
PATIENCE_S = 20


def talk(host: DevhostProcess, raw: bytes) -> bytes:
    """Send raw bytes, then read until the host closes the connection."""
    with socket.create_connection(("127.0.0.1", host.port), timeout=PATIENCE_S) as sock:
        sock.sendall(raw)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


@pytest.fixture
def host(start_devhost: StartDevhost) -> DevhostProcess:
    return start_devhost(
        "http_basic", env={**TIMEOUTS, "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "10000"}
    )


def test_unfinished_headers_are_dropped(host: DevhostProcess) -> None:
    assert talk(host, b"POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Le") == b""


def test_a_silent_connection_is_dropped(host: DevhostProcess) -> None:
    assert talk(host, b"") == b""


def test_a_short_body_gets_408_and_the_connection_closes(host: DevhostProcess) -> None:
    answer = talk(host, b"POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n1234567")
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"stalled" in answer and b"7 bytes received" in answer


def test_a_body_over_the_limit_is_413_declared_or_streamed(host: DevhostProcess) -> None:
    declared = requests.post(host.url("/v1/echo"), data=b"x" * 10_001, timeout=10)
    assert declared.status_code == 413
    assert "10000 bytes" in declared.json()["error"]
    streamed = requests.post(host.url("/v1/echo"), data=iter([b"x" * 6000] * 2), timeout=10)
    assert streamed.status_code == 413
    assert requests.post(host.url("/v1/echo"), data=b"x" * 10_000, timeout=10).status_code == 200


def test_a_compressed_body_reaches_the_function_as_sent(host: DevhostProcess) -> None:
    bomb = gzip.compress(b"\0" * 3_000_000)  # 3 KB on the wire, 3 MB inflated
    response = requests.post(
        host.url("/v1/echo"),
        data=bomb,
        headers={"content-encoding": "gzip", "content-type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["x-sha256"] == hashlib.sha256(bomb).hexdigest()


def test_keep_alive_still_serves_several_requests(host: DevhostProcess) -> None:
    with requests.Session() as session:
        for n in range(3):
            assert session.get(host.url(f"/v1/items/{n}"), timeout=5).json()["id"] == n
