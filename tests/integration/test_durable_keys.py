"""Keys on the Durable HTTP API and the admin API when `DEVHOST_ENFORCE_AUTH` is true."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.devhost_process import FIXTURE_APPS, DevhostProcess
from tests.durable_http import WEBHOOKS

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevhostProcess]:
    data: Path = tmp_path_factory.mktemp("durable-keys") / "data"
    process = DevhostProcess(
        FIXTURE_APPS / "durable_features", data, env={"DEVHOST_ENFORCE_AUTH": "true"}
    ).wait_ready()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def keys(host: DevhostProcess) -> dict[str, Any]:
    return host.keys()


def _system_key(keys: dict[str, Any]) -> str:
    key: str = keys["systemKeys"]["durabletask_extension"]
    return key


def test_the_admin_api_needs_the_master_key(host: DevhostProcess, keys: dict[str, Any]) -> None:
    status = host.url("/admin/host/status")
    assert requests.get(status, timeout=10).status_code == 401
    for key in (keys["hostKeys"]["default"], _system_key(keys)):
        assert requests.get(status, params={"code": key}, timeout=10).status_code == 401
    answer = requests.get(status, headers={"x-functions-key": keys["masterKey"]}, timeout=10)
    assert answer.status_code == 200 and answer.json()["state"] == "Running"


def test_the_webhooks_take_the_system_key_or_the_master_key_only(
    host: DevhostProcess, keys: dict[str, Any]
) -> None:
    instances = host.url(f"{WEBHOOKS}/instances")
    refused = [None, "wrong", keys["hostKeys"]["default"], keys["functionKeys"]["keyed_start"]]
    for key in refused:
        params = {"code": key} if key else {}
        assert requests.get(instances, params=params, timeout=10).status_code == 401, key
    for key in (_system_key(keys), keys["masterKey"]):
        assert requests.get(instances, params={"code": key}, timeout=10).status_code == 200


def test_the_rpc_alias_answers_nothing_without_its_key(host: DevhostProcess) -> None:
    """The SDK's rpcBaseUrl lives under a path keyed by the system key; no unkeyed alias."""
    created_from = {"createdTimeFrom": "2000-01-01T00:00:00Z"}
    assert requests.get(host.url("/durabletask/instances"), timeout=10).status_code == 404
    assert (
        requests.delete(
            host.url("/durabletask/instances"), params=created_from, timeout=10
        ).status_code
        == 404
    )
    started = requests.post(host.url("/durabletask/orchestrators/sequence"), timeout=10)
    assert started.status_code == 404
    assert requests.get(host.url("/durabletask/wrong/instances"), timeout=10).status_code == 404


def test_links_from_a_keyed_starter_carry_the_system_key_and_the_configured_address(
    host: DevhostProcess, keys: dict[str, Any]
) -> None:
    own_key = keys["functionKeys"]["keyed_start"]["default"]
    response = requests.post(
        host.url("/api/keyed/start/approval"),
        headers={"x-functions-key": own_key, "Host": "evil.example"},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    links = response.json()
    text = response.text + response.headers["Location"]
    assert keys["hostKeys"]["default"] not in text and keys["masterKey"] not in text
    assert "evil.example" not in text
    for name, url in links.items():
        if name != "id":
            assert url.startswith(host.base_url + WEBHOOKS), url
            assert f"code={_system_key(keys)}" in url, url
    assert "rewindPostUri" not in links  # rewind is not implemented: no link to a 404
    status = requests.get(links["statusQueryGetUri"], timeout=10)
    assert status.status_code == 202 and status.json()["runtimeStatus"] in ("Pending", "Running")
    terminate = links["terminatePostUri"].replace("{text}", "done")
    assert requests.post(terminate, timeout=10).status_code == 202
    # The system key the links carry opens no function route, not even the one that made them.
    again = requests.post(
        host.url("/api/keyed/start/approval"), params={"code": _system_key(keys)}, timeout=10
    )
    assert again.status_code == 401
    direct = requests.post(
        host.url(f"{WEBHOOKS}/orchestrators/sequence"),
        params={"code": _system_key(keys)},
        headers={"Host": "evil.example"},
        timeout=10,
    )
    assert direct.status_code == 202
    assert direct.headers["Location"].startswith(host.base_url + WEBHOOKS)
