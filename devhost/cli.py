"""The devhost's command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from devhost import audit_cli, documents_cli
from devhost.durable import cli as durable_cli
from devhost.errors import StartupError
from devhost.host import HostOptions, configure_logging, serve
from devhost.identity import cli as token_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="run a function app")
    start.add_argument("--script-root", type=Path, default=Path.cwd(), help="the app's folder")
    start.add_argument("--port", type=int, default=7071)
    start.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    start.add_argument("--data-dir", type=Path, default=None, help="where local state lives")
    start.add_argument("--shutdown-timeout", type=float, default=None, help="seconds")
    durable_cli.add_parser(commands)
    documents_cli.add_parser(commands)
    audit_cli.add_parser(commands)
    token_cli.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    if arguments.command == "start":
        configure_logging()
        options = HostOptions(
            script_root=arguments.script_root,
            port=arguments.port,
            host=arguments.host,
            data_dir=arguments.data_dir,
            shutdown_timeout_s=arguments.shutdown_timeout,
        )
        try:
            asyncio.run(serve(options))
        except (StartupError, OSError) as error:
            print(f"devhost: cannot start: {error}", file=sys.stderr)
            return 2
        return 0
    if arguments.command == "instances":
        return durable_cli.run(arguments)
    if arguments.command == "documents":
        return documents_cli.run(arguments)
    if arguments.command == "audit":
        return audit_cli.run(arguments)
    if arguments.command == "token":
        return token_cli.run(arguments)
    return 2
