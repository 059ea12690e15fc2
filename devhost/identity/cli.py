"""`python -m devhost token`: mint an access token from the devhost's local issuer.

The token goes to stdout and nothing else does, so `TOKEN=$(python -m devhost token ...)`
works; bad arguments exit 2 with a message, an unusable key file or data dir exits 1.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from devhost.appsettings import AppSettings, load_local_settings
from devhost.errors import StartupError
from devhost.host import HostOptions, resolve_data_dir
from embedded.identity.keyfile import IssuerKeyError
from embedded.identity.local_issuer import (
    LOCAL_AUDIENCE,
    LOCAL_DEVELOPER,
    LocalIssuer,
    TokenRequestError,
    check_name,
    check_ttl,
    check_word,
)

DEFAULT_TTL_S = 3600
_SECONDS = re.compile(r"[0-9]{1,9}")
_DURATION = re.compile(r"(?:([0-9]{1,6})h)?(?:([0-9]{1,6})m)?(?:([0-9]{1,9})s)?")
EXAMPLES = """examples:
  python -m devhost token --role Platform.Analyst --app my-app --ttl 1h
  python -m devhost token --role Platform.Reader --role PII.Read --user alice --ttl 15m
  curl -H "Authorization: Bearer $(python -m devhost token --role Platform.Reader)" ...
"""


def parse_ttl(text: str) -> int:
    """`90s`, `15m`, `1h`, `2h30m` (hours, minutes, seconds in that order) or plain seconds,
    from 60 s to 24 h."""
    value = text.strip().lower()
    match = _DURATION.fullmatch(value)
    if _SECONDS.fullmatch(value):
        seconds = int(value)
    elif value and match is not None:
        hours, minutes, rest = (int(part or 0) for part in match.groups())
        seconds = hours * 3600 + minutes * 60 + rest
    else:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a lifetime: give seconds (3600) or a duration (90s, 15m, 1h, 2h30m)"
        )
    try:
        return check_ttl(seconds)
    except TokenRequestError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _argument(check: Callable[[str, object], str], what: str) -> Callable[[str], str]:
    """An argparse type that applies the issuer's own check, so its message is the error."""

    def convert(text: str) -> str:
        try:
            return check(what, text)
        except TokenRequestError as error:
            raise argparse.ArgumentTypeError(str(error)) from error

    convert.__name__ = what
    return convert


def add_parser(commands: Any) -> None:
    """Register the `token` command on the devhost's subparsers."""
    parser = commands.add_parser(
        "token",
        help="mint an access token from the devhost's local issuer",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--role",
        dest="roles",
        action="append",
        required=True,
        type=_argument(check_word, "role"),
        metavar="ROLE",
        help="an app role the token grants; repeatable",
    )
    caller = parser.add_mutually_exclusive_group()
    caller.add_argument(
        "--app", type=_argument(check_name, "app"), help="an application (client credentials) token"
    )
    caller.add_argument(
        "--user",
        type=_argument(check_name, "user"),
        help=f"a user's token (default: {LOCAL_DEVELOPER})",
    )
    parser.add_argument(
        "--ttl",
        type=parse_ttl,
        default=DEFAULT_TTL_S,
        help="lifetime: 90s, 15m, 1h, 2h30m or seconds, 60 s to 24 h (default: 1h)",
    )
    parser.add_argument(
        "--audience",
        type=_argument(check_word, "audience"),
        default=LOCAL_AUDIENCE,
        help="default: %(default)s",
    )
    parser.add_argument(
        "--scope",
        dest="scopes",
        action="append",
        default=[],
        type=_argument(check_word, "scope"),
        metavar="SCOPE",
        help="a delegated scope (scp) of a user's token; repeatable",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the devhost's data dir (default: the one `python -m devhost start` uses here)",
    )


def default_data_dir(folder: Path) -> Path:
    """The data dir `python -m devhost start` uses for an app in `folder`: DEVHOST_DATA_DIR or
    PLATFORM_DATA_DIR from the environment or local.settings.json, else `.data`."""
    settings = AppSettings(load_local_settings(folder))
    return resolve_data_dir(HostOptions(script_root=folder), settings)


def run(arguments: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Print one token; 0 on success, 2 for a bad request, 1 when the issuer cannot be used."""
    try:
        data_dir = arguments.data_dir or default_data_dir(Path.cwd())
        issuer = LocalIssuer.open(data_dir)
    except (StartupError, IssuerKeyError, OSError) as error:
        print(f"devhost token: {error}", file=sys.stderr)
        return 1
    try:
        token = issuer.mint(
            roles=arguments.roles,
            app=arguments.app,
            user=arguments.user or LOCAL_DEVELOPER,
            ttl_s=arguments.ttl,
            audience=arguments.audience,
            scopes=arguments.scopes,
        )
    except TokenRequestError as error:
        print(f"devhost token: {error}", file=sys.stderr)
        return 2
    out.write(token + "\n")
    return 0
