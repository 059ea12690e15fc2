"""The devhost runs an HTTP app it has never seen, over real HTTP."""

from __future__ import annotations

import concurrent.futures
import json
import os
import time
import uuid

import pytest
import requests

from tests.conftest import StartDevhost

pytestmark = pytest.mark.integration


@pytest.fixture
def host(start_devhost: StartDevhost):  # type: ignore[no-untyped-def]
    return start_devhost("http_basic")


def test_route_prefix_and_int_constraint(host) -> None:  # type: ignore[no-untyped-def]
    response = requests.get(host.url("/v1/items/42"), timeout=5)
    assert response.status_code == 200
    assert response.json()["id"] == 42
    assert response.headers["x-ms-invocation-id"]
    assert requests.get(host.url("/api/items/42"), timeout=5).status_code == 404


def test_literal_segment_wins_over_parameter(host) -> None:  # type: ignore[no-untyped-def]
    assert requests.get(host.url("/v1/items/latest"), timeout=5).json() == {"latest": True}


def test_constraint_mismatch_is_404(host) -> None:  # type: ignore[no-untyped-def]
    response = requests.get(host.url("/v1/items/abc"), timeout=5)
    assert response.status_code == 404
    assert "no function serves" in response.json()["error"]
    assert requests.get(host.url("/v1/items/99999999999"), timeout=5).status_code == 404


def test_guid_and_catch_all(host) -> None:  # type: ignore[no-untyped-def]
    user = str(uuid.uuid4())
    response = requests.get(host.url(f"/v1/users/{user}/files/a/b/c.txt"), timeout=5)
    assert response.json() == {"user": user, "path": "a/b/c.txt"}
    assert requests.get(host.url("/v1/users/not-a-guid/files/x"), timeout=5).status_code == 404


def test_optional_bool_and_alpha(host) -> None:  # type: ignore[no-untyped-def]
    assert requests.get(host.url("/v1/words/hello"), timeout=5).json() == {"word": "hello"}
    assert requests.get(host.url("/v1/words/hello/true"), timeout=5).json() == {
        "word": "hello",
        "flag": "true",
    }
    assert requests.get(host.url("/v1/words/hello/maybe"), timeout=5).status_code == 404
    assert requests.get(host.url("/v1/words/h3llo"), timeout=5).status_code == 404


def test_wrong_method_is_405_with_allow(host) -> None:  # type: ignore[no-untyped-def]
    response = requests.post(host.url("/v1/items/1"), timeout=5)
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"GET", "DELETE"}


def test_async_function_on_loop_and_sync_in_pool(host) -> None:  # type: ignore[no-untyped-def]
    assert requests.delete(host.url("/v1/items/1"), timeout=5).status_code == 204
    assert requests.get(host.url("/v1/items/1"), timeout=5).json()["thread"].startswith("func")
    assert requests.get(host.url("/v1/async-info"), timeout=5).json()["thread"] == "MainThread"


def test_binary_body_query_and_headers_round_trip(host) -> None:  # type: ignore[no-untyped-def]
    body = os.urandom(256 * 1024) + bytes(range(256))
    response = requests.put(
        host.url("/v1/echo?a=1&b=two%20words&unicode=%C3%A9"),
        data=body,
        headers={"x-custom": "value-1", "content-type": "application/octet-stream"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.content == body
    assert response.headers["x-method"] == "PUT"
    assert response.headers["x-seen-header"] == "value-1"
    assert json.loads(response.headers["x-query"]) == {"a": "1", "b": "two words", "unicode": "é"}


def test_raising_function_gives_500_and_host_keeps_serving(host) -> None:  # type: ignore[no-untyped-def]
    response = requests.get(host.url("/v1/boom"), timeout=5)
    assert response.status_code == 500
    invocation_id = response.json()["invocationId"]
    assert response.headers["x-ms-invocation-id"] == invocation_id
    assert "always fails" not in response.text
    output = host.wait_for_output(invocation_id)
    assert "RuntimeError: this function always fails" in output
    assert requests.get(host.url("/v1/items/7"), timeout=5).status_code == 200


def test_named_http_output_binding_and_context(host) -> None:  # type: ignore[no-untyped-def]
    response = requests.get(host.url("/v1/out-binding"), timeout=5)
    assert (response.status_code, response.text) == (201, "via out")
    context = requests.get(host.url("/v1/context"), timeout=5)
    assert context.json()["function"] == "with_context"
    assert context.json()["invocation_id"] == context.headers["x-ms-invocation-id"]


def test_route_from_local_settings_and_function_name(host) -> None:  # type: ignore[no-untyped-def]
    response = requests.get(host.url("/v1/greetings/hello?name=devhost"), timeout=5)
    assert response.text == "hello devhost"


def test_one_structured_log_line_per_invocation(host) -> None:  # type: ignore[no-untyped-def]
    response = requests.get(host.url("/v1/items/5"), timeout=5)
    invocation_id = response.headers["x-ms-invocation-id"]
    output = host.wait_for_output(invocation_id)
    lines = [line for line in output.splitlines() if invocation_id in line]
    assert len(lines) == 1
    record = json.loads(lines[0][lines[0].index("{") :])
    assert record["function"] == "get_item"
    assert record["trigger"] == "httpTrigger"
    assert record["outcome"] == "Succeeded"
    assert record["duration_ms"] >= 0


def test_auth_is_off_by_default(host) -> None:  # type: ignore[no-untyped-def]
    assert requests.get(host.url("/v1/secure"), timeout=5).status_code == 200
    assert requests.get(host.url("/v1/admin-only"), timeout=5).status_code == 200


def test_auth_enforced_when_the_setting_asks(start_devhost: StartDevhost) -> None:
    host = start_devhost("http_basic", env={"DEVHOST_ENFORCE_AUTH": "true"})
    keys = json.loads((host.data_dir / "devhost" / "keys.json").read_text())
    function_key = keys["functionKeys"]["secure"]["default"]
    other_key = keys["functionKeys"]["get_item"]["default"]
    assert function_key in host.output(), "keys are printed at start"
    assert requests.get(host.url("/v1/secure"), timeout=5).status_code == 401
    assert requests.get(host.url("/v1/secure?code=wrong"), timeout=5).status_code == 401
    assert (
        requests.get(host.url("/v1/secure"), params={"code": other_key}, timeout=5).status_code
        == 401
    )
    assert requests.get(host.url("/v1/secure"), params={"code": function_key}, timeout=5).ok
    assert requests.get(
        host.url("/v1/secure"), headers={"x-functions-key": keys["hostKeys"]["default"]}, timeout=5
    ).ok
    admin = host.url("/v1/admin-only")
    assert (
        requests.get(admin, params={"code": keys["hostKeys"]["default"]}, timeout=5).status_code
        == 401
    )
    assert requests.get(admin, params={"code": keys["masterKey"]}, timeout=5).ok
    assert requests.get(host.url("/v1/items/1"), timeout=5).ok, "anonymous stays open"


def test_graceful_shutdown_finishes_in_flight_work(start_devhost: StartDevhost) -> None:
    host = start_devhost("http_basic")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(requests.get, host.url("/v1/slow?s=1.5"), timeout=10)
        time.sleep(0.5)
        assert host.stop() == 0
        response = pending.result()
    assert response.status_code == 200
    assert response.json() == {"slept": True}
    assert "devhost stopped" in host.output()


def test_a_second_devhost_of_the_app_on_its_data_dir_refuses_to_start(
    start_devhost: StartDevhost,
) -> None:
    first = start_devhost("http_basic")
    second = start_devhost("http_basic", wait=False)  # the same data dir, another port
    assert second.process.wait(30) == 2
    assert f"another devhost (pid {first.process.pid}) is running" in second.output()
    assert requests.get(first.url("/v1/items/1"), timeout=5).ok
    assert first.stop() == 0
    start_devhost("http_basic")  # free once the first has stopped


def test_a_disabled_function_does_not_run(start_devhost: StartDevhost) -> None:
    host = start_devhost(
        "http_basic",
        env={"AzureWebJobs.get_item.Disabled": "true", "AzureWebJobs__echo__Disabled": "1"},
    )
    disabled_get = requests.get(host.url("/v1/items/1"), timeout=5)
    assert (disabled_get.status_code, disabled_get.headers["Allow"]) == (405, "DELETE")
    assert requests.post(host.url("/v1/echo"), data=b"x", timeout=5).status_code == 404
    assert requests.get(host.url("/v1/items/latest"), timeout=5).status_code == 200
    assert "get_item: disabled by AzureWebJobs.get_item.Disabled" in host.output()


def test_a_port_in_use_is_refused_with_how_to_pick_another(host, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from tests.devhost_process import FIXTURE_APPS, PROJECT_ROOT

    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "devhost",
            "start",
            "--script-root",
            str(FIXTURE_APPS / "http_basic"),
        ]
        + ["--port", str(host.port), "--data-dir", str(tmp_path / "second")],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 2
    assert f"port {host.port} on 127.0.0.1 is in use" in second.stderr
    assert "--port N (make run PORT=N)" in second.stderr
