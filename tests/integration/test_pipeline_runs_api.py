"""The pipeline runs API with keys enforced: links, the in-progress guard, strict top, cancel."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import StartDevhost
from tests.devhost_process import PROJECT_ROOT, DevhostProcess
from tests.durable_http import WEBHOOKS
from tests.integration.test_pipeline_medallion import FAST

pytestmark = pytest.mark.integration
RUNS = "/api/pipelines/medallion/runs"


def _wait(url: str, statuses: tuple[str, ...], timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = requests.get(url, timeout=30).json()
        if body["runtimeStatus"] in statuses:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def _key(keys: dict[str, Any], function: str) -> dict[str, str]:
    return {"x-functions-key": keys["functionKeys"][function]["default"]}


def test_a_suspended_run_is_in_progress_and_a_cancel_stops_it(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    data_dir = tmp_path / "platform"
    env = {"PLATFORM_DATA_DIR": str(data_dir), "DEVHOST_ENFORCE_AUTH": "true", **FAST}
    host: DevhostProcess = start_devhost(PROJECT_ROOT, env=env, data_dir=data_dir)
    keys = host.keys()
    system_key = keys["systemKeys"]["durabletask_extension"]

    started = requests.post(
        host.url(RUNS),
        headers={**_key(keys, "start_pipeline_run"), "Host": "evil.example"},
        timeout=30,
    )

    assert started.status_code == 202, started.text
    links = started.json()
    text = started.text + started.headers["Location"]
    assert "evil.example" not in text and keys["hostKeys"]["default"] not in text
    for name, url in links.items():
        if name != "id":
            assert url.startswith(host.base_url + WEBHOOKS) and f"code={system_key}" in url, url
    listing = host.url(RUNS)
    assert requests.get(listing, params={"code": system_key}, timeout=30).status_code == 401

    suspend = requests.post(links["suspendPostUri"].replace("{text}", "test"), timeout=30)
    assert suspend.status_code == 202, suspend.text
    _wait(links["statusQueryGetUri"], ("Suspended",))
    second = requests.post(host.url(RUNS), headers=_key(keys, "start_pipeline_run"), timeout=30)
    assert second.status_code == 409, second.text
    assert second.json()["instanceId"] == links["id"]

    bad_top = requests.get(
        listing, params={"top": "²"}, headers=_key(keys, "list_pipeline_runs"), timeout=30
    )
    assert bad_top.status_code == 400 and "top must be" in bad_top.json()["error"]

    cancel_key = _key(keys, "cancel_pipeline_run")
    unknown = requests.post(host.url(f"{RUNS}/no-such-run/cancel"), headers=cancel_key, timeout=30)
    assert unknown.status_code == 404, unknown.text
    for raw in ("%3F", "%23x"):  # no instance id holds them; the client would send them raw
        odd = requests.post(host.url(f"{RUNS}/{raw}/cancel"), headers=cancel_key, timeout=30)
        assert odd.status_code == 404, odd.text
    cancelled = requests.post(
        host.url(f"{RUNS}/{links['id']}/cancel"), headers=cancel_key, timeout=30
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["stopping"] is True
    assert cancelled.json()["runtimeStatus"] == "Suspended"

    resume = requests.post(links["resumePostUri"].replace("{text}", "test"), timeout=30)
    assert resume.status_code == 202
    final = _wait(links["statusQueryGetUri"], ("Completed", "Failed", "Terminated"))
    assert final["runtimeStatus"] == "Completed", final
    assert final["output"]["status"] == "cancelled", final["output"]
    assert final["customStatus"]["stage"] == "cancelled"
    again = requests.post(host.url(f"{RUNS}/{links['id']}/cancel"), headers=cancel_key, timeout=30)
    assert again.status_code == 200 and again.json()["stopping"] is False
