"""Host keys: what each auth level accepts, and keys that survive restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from devhost.keys import load_or_create_keys

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
