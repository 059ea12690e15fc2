"""The address links are built from: the configured base URL, never the request's Host."""

from __future__ import annotations

import json

import azure.durable_functions as df
import pytest
from aiohttp.test_utils import make_mocked_request

from devhost.appsettings import AppSettings
from devhost.durable.links import Links
from devhost.host import public_base_url
from devhost.http.convert import to_function_request

pytestmark = pytest.mark.unit
LISTEN = "http://127.0.0.1:7071"


@pytest.mark.parametrize(
    ("hostname", "expected"),
    [
        ("", LISTEN),
        ("myapp.azurewebsites.net", "https://myapp.azurewebsites.net"),
        ("localhost:7071", "http://localhost:7071"),
        ("127.0.0.1:9000", "http://127.0.0.1:9000"),
        ("[::1]:7071", "http://[::1]:7071"),
    ],
)
def test_the_base_url_comes_from_website_hostname_or_the_listening_address(
    hostname: str, expected: str
) -> None:
    assert public_base_url(AppSettings({"WEBSITE_HOSTNAME": hostname}), LISTEN) == expected


def test_a_forged_host_header_does_not_reach_the_links_a_function_builds() -> None:
    request = make_mocked_request(
        "POST", "/api/start?x=1", headers={"Host": "evil.example", "X-Forwarded-Host": "evil2"}
    )
    function_request = to_function_request(request, b"", {}, origin="https://app.example")
    assert function_request.url == "https://app.example/api/start?x=1"
    links = Links("https://app.example", "Hub", code="system-key", rpc_url=LISTEN, rpc_key="k")
    client = df.DurableOrchestrationClient(links.client_binding())
    body = json.loads(client.create_check_status_response(function_request, "i1").get_body())
    assert all(
        url.startswith("https://app.example/runtime/webhooks/durabletask/instances/i1")
        and url.endswith("code=system-key")
        for key, url in body.items()
        if key != "id"
    ), body
    assert client._orchestration_bindings.rpc_base_url == f"{LISTEN}/durabletask/k/"
