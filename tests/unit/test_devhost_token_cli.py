"""`python -m devhost token`: lifetimes in every accepted form, a token alone on stdout, and
exit 2 with a message for every bad argument."""

from __future__ import annotations

import argparse
import io
import json
import re
from pathlib import Path

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from devhost.cli import build_parser, main
from devhost.identity.cli import default_data_dir, parse_ttl, run
from embedded.identity.local_issuer import (
    LOCAL_AUDIENCE,
    LOCAL_ISSUER,
    LOCAL_TENANT_ID,
    jwks_path,
    subject_id,
)
from shared.identity.tokens import JwksKeys, TokenRules, TokenValidator

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("1h", 3600),
        ("2h30m", 9000),
        ("1h0m30s", 3630),
        ("24h", 86_400),
        ("3600", 3600),
        ("60", 60),
        (" 1H ", 3600),
    ],
)
def test_lifetimes_in_every_form(text: str, seconds: int) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["", "h", "1d", "-60", "1.5h", "30m1h", "1h 30m", "one hour", "0x100", "٣٦٠٠", "9" * 40],
)
def test_what_is_not_a_lifetime_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="is not a lifetime"):
        parse_ttl(text)


@pytest.mark.parametrize("text", ["0", "59", "59s", "86401", "24h1s", "25h"])
def test_a_lifetime_outside_a_minute_to_a_day_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="from 60 s to 24 h"):
        parse_ttl(text)


@given(st.integers(0, 24), st.integers(0, 59), st.integers(0, 59))
def test_hours_minutes_and_seconds_add_up(hours: int, minutes: int, seconds: int) -> None:
    total = hours * 3600 + minutes * 60 + seconds
    text = f"{hours}h{minutes}m{seconds}s"
    if 60 <= total <= 86_400:
        assert parse_ttl(text) == total
    else:
        with pytest.raises(argparse.ArgumentTypeError):
            parse_ttl(text)


def mint(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    return run(build_parser().parse_args(["token", *args]), out), out.getvalue()


def test_the_token_is_printed_alone_and_verifies(tmp_path: Path) -> None:
    code, text = mint(
        "--role", "Platform.Analyst", "--role", "Platform.Reader", "--app", "my-app",
        "--ttl", "15m", "--data-dir", str(tmp_path),
    )  # fmt: skip
    assert code == 0 and text.endswith("\n") and text.count("\n") == 1
    token = text.strip()
    rules = TokenRules(LOCAL_TENANT_ID, (LOCAL_AUDIENCE,), (LOCAL_ISSUER,))
    keys = JwksKeys.from_url(str(jwks_path(tmp_path)))
    principal = TokenValidator(rules, keys).verify(token)
    assert (principal.kind, principal.id) == ("app", "my-app")
    assert principal.roles == {"Platform.Analyst", "Platform.Reader"}
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 900


def test_a_users_token_with_scopes_and_an_audience(tmp_path: Path) -> None:
    code, text = mint(
        "--role", "PII.Read", "--user", "alice", "--scope", "user_impersonation",
        "--audience", "api://other", "--data-dir", str(tmp_path),
    )  # fmt: skip
    claims = jwt.decode(text.strip(), options={"verify_signature": False})
    assert code == 0
    assert claims["oid"] == subject_id("user", "alice")
    assert (claims["scp"], claims["aud"], claims["roles"]) == (
        "user_impersonation",
        "api://other",
        ["PII.Read"],
    )
    code, text = mint("--role", "Platform.Reader", "--data-dir", str(tmp_path))
    default = jwt.decode(text.strip(), options={"verify_signature": False})
    assert default["oid"] == subject_id("user", "local-developer")
    assert default["exp"] - default["iat"] == 3600


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "the following arguments are required: --role"),
        (["--role", "Platform Reader"], "argument --role: a role must not contain whitespace"),
        (["--role", ""], "argument --role: a role must be a non-empty string"),
        (["--role", "R", "--ttl", "1d"], "argument --ttl: '1d' is not a lifetime"),
        (["--role", "R", "--ttl", "30s"], "argument --ttl: the lifetime must be from 60 s"),
        (["--role", "R", "--app", "a", "--user", "u"], "not allowed with argument --app"),
        (["--role", "R", "--app", ""], "argument --app: the app name must be a non-empty"),
        (["--role", "R", "--scope", "a b"], "argument --scope: a scope must not contain"),
        (["--role", "R", "--audience", ""], "argument --audience: an? audience"),
        (["--role", "R", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["token", "--data-dir", str(tmp_path), *args])
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert re.search(message, captured.err), captured.err
    assert not (tmp_path / "identity").exists()  # refused before any key was made


def test_an_applications_token_with_scopes_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["token", "--role", "R", "--app", "a", "--scope", "s", "--data-dir", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert "roles, not scopes" in captured.err


def test_an_unusable_key_file_exits_1_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "identity").mkdir(mode=0o700)
    (tmp_path / "identity" / "issuer-key.pem").write_text("garbage")
    assert main(["token", "--role", "R", "--data-dir", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "issuer-key.pem" in captured.err


def test_the_default_data_dir_is_the_one_start_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEVHOST_DATA_DIR", raising=False)
    monkeypatch.delenv("PLATFORM_DATA_DIR", raising=False)
    assert default_data_dir(tmp_path) == (tmp_path / ".data").resolve()
    settings = {"Values": {"PLATFORM_DATA_DIR": "state"}}
    (tmp_path / "local.settings.json").write_text(json.dumps(settings))
    assert default_data_dir(tmp_path) == (tmp_path / "state").resolve()
    monkeypatch.setenv("DEVHOST_DATA_DIR", str(tmp_path / "host"))
    assert default_data_dir(tmp_path) == (tmp_path / "host").resolve()
    monkeypatch.chdir(tmp_path)
    code, _ = mint("--role", "Platform.Reader")
    assert code == 0 and jwks_path(tmp_path / "host").exists()
