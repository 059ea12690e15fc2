"""Host keys: what each auth level accepts, and keys that survive restarts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devhost.keys import DURABLE_SYSTEM_KEY, load_or_create_keys

pytestmark = pytest.mark.unit


def test_auth_levels(tmp_path: Path) -> None:
    keys = load_or_create_keys(tmp_path / "keys.json", ["a", "b"])
    a, b = keys.function_key("a"), keys.function_key("b")
    host, master = keys.host["default"], keys.master
    assert keys.accepts("anonymous", "a", None)
    assert keys.accepts("function", "a", a)
    assert not keys.accepts("function", "a", b)
    assert keys.accepts("function", "a", host)
    assert keys.accepts("function", "a", master)
    assert not keys.accepts("function", "a", None)
    assert not keys.accepts("function", "a", "")
    assert not keys.accepts("admin", "a", host)
    assert keys.accepts("ADMIN", "a", master)


def test_keys_survive_restart_and_new_functions_get_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    first = load_or_create_keys(path, ["a"])
    second = load_or_create_keys(path, ["a", "c"])
    assert second.master == first.master
    assert second.function_key("a") == first.function_key("a")
    assert second.function_key("c") not in (first.master, first.function_key("a"))
    assert path.stat().st_mode & 0o777 == 0o600


def test_the_durable_system_key_opens_only_the_durable_webhooks(tmp_path: Path) -> None:
    keys = load_or_create_keys(tmp_path / "keys.json", ["a"])
    system = keys.system_key(DURABLE_SYSTEM_KEY)
    assert keys.accepts_system(DURABLE_SYSTEM_KEY, system)
    assert keys.accepts_system(DURABLE_SYSTEM_KEY, keys.master)
    assert not keys.accepts_system(DURABLE_SYSTEM_KEY, keys.host["default"])
    assert not keys.accepts_system(DURABLE_SYSTEM_KEY, keys.function_key("a"))
    assert not keys.accepts_system("other_extension", system)
    assert not keys.accepts_system(DURABLE_SYSTEM_KEY, None)
    assert not keys.accepts("function", "a", system), "a system key opens no function"
    assert not keys.accepts("admin", "a", system)
    assert not keys.is_master(system) and keys.is_master(keys.master)


def test_the_system_key_is_persisted_and_added_to_an_older_keys_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"masterKey": "m", "hostKeys": {"default": "h"}}))
    first = load_or_create_keys(path, [])
    assert json.loads(path.read_text())["systemKeys"] == first.system
    second = load_or_create_keys(path, [])
    assert second.system_key(DURABLE_SYSTEM_KEY) == first.system_key(DURABLE_SYSTEM_KEY)
    assert second.master == "m"
