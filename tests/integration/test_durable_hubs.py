"""Task hubs from host.json: two apps on one data dir never see each other's instances."""

from __future__ import annotations

import pytest
import requests

from tests.conftest import StartDevhost
from tests.durable_http import WEBHOOKS, start, wait_for

pytestmark = pytest.mark.integration


def test_two_hubs_on_one_data_dir_are_isolated(start_devhost: StartDevhost) -> None:
    features = start_devhost("durable_features")
    other = start_devhost("durable_hub_b", data_dir=features.data_dir)
    mine = start(features, "sequence")
    response = requests.post(other.url(f"{WEBHOOKS}/orchestrators/sequence"), timeout=10)
    theirs = response.json()["id"]
    assert "taskHub=TestHubName" in response.json()["statusQueryGetUri"]
    assert wait_for(features, mine)["runtimeStatus"] == "Completed"
    assert wait_for(other, theirs)["output"] == ["Hello hub b!"]
    assert requests.get(other.url(f"{WEBHOOKS}/instances/{mine}"), timeout=10).status_code == 404
    assert (
        requests.get(features.url(f"{WEBHOOKS}/instances/{theirs}"), timeout=10).status_code == 404
    )
    listed_a = {
        s["instanceId"]
        for s in requests.get(features.url(f"{WEBHOOKS}/instances"), timeout=10).json()
    }
    listed_b = {
        s["instanceId"] for s in requests.get(other.url(f"{WEBHOOKS}/instances"), timeout=10).json()
    }
    assert mine in listed_a and theirs not in listed_a
    assert theirs in listed_b and mine not in listed_b
    hubs = sorted(p.name for p in (features.data_dir / "durable").glob("*.sqlite"))
    assert hubs == ["FeaturesHub.sqlite", "TestHubName.sqlite"]
